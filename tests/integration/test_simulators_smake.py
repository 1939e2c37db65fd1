"""The Smake simulator over real HTTP: validation, the async create, states, lists, cancel."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from orderflow.sandbox.simulators.base import ManualClock, SimulatorServer
from orderflow.sandbox.simulators.smake import FAILURE_MESSAGE, SmakeSimulator

AUTH = {"Authorization": "Bearer smake-sim-key"}
STEP_S = 10.0
VARIANT = {"type": "basic", "id": 25}

ORDER: dict[str, Any] = {
    "customer": {"email": "max@example.com"},
    "items": [{"variant": {"type": "basic", "id": 25}, "quantity": 3}],
    "shipping_address": {
        "first_name": "Max",
        "last_name": "Mustermann",
        "street1": "Am Wassermann 361",
        "zip": "508291",
        "city": "Köln",
        "country_code": "DE",
        "phone": "+49 123 456 789",
        "email": "max@example.com",
    },
    "shipments": [{"shipping_method": {"handle": "shipping-method-handle"}}],
    "payments": [{"payment_method": {"handle": "payment-method-handle"}}],
}


def order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ORDER)
    body.update(changes)
    return body


@dataclass
class Rig:
    sim: SmakeSimulator
    server: SimulatorServer[SmakeSimulator]
    clock: ManualClock
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return self.server.base_url

    async def create(self, body: dict[str, Any]) -> int:
        async with self.http.post(f"{self.base}/orders", json=body, headers=AUTH) as resp:
            assert resp.status == 202, await resp.text()
            return int(resp.headers["X-Identifier"])

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}", headers=AUTH) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock()
    sim = SmakeSimulator(clock=clock, seconds_per_state=STEP_S, seed=3)
    async with SimulatorServer(sim) as server, aiohttp.ClientSession() as http:
        yield Rig(sim, server, clock, http)


async def test_routes_sit_under_the_app_prefix_and_need_the_api_key(rig: Rig) -> None:
    assert rig.base.endswith("/v2/apps/1")
    async with rig.http.get(f"{rig.server.root_url}/orders", headers=AUTH) as resp:
        assert resp.status == 404
    async with rig.http.get(f"{rig.base}/orders") as resp:
        assert resp.status == 401
    async with rig.http.get(f"{rig.base}/orders", headers={"Authorization": "Bearer x"}) as resp:
        assert resp.status == 401
    async with rig.http.post(f"{rig.base}/orders", json=order()) as resp:
        assert resp.status == 401
    assert rig.sim.ledger.total_created == 0


async def test_create_answers_202_with_identifier_and_location(rig: Rig) -> None:
    async with rig.http.post(
        f"{rig.base}/orders", json=order(external_identifier="SHOP-1"), headers=AUTH
    ) as resp:
        assert resp.status == 202
        order_id = int(resp.headers["X-Identifier"])
        location = resp.headers["Location"]
    assert location.startswith(f"{rig.server.root_url}/jobs/")
    async with rig.http.get(location, headers=AUTH) as resp:
        assert (await resp.json())["order"] == order_id

    status, created = await rig.get(f"/orders/{order_id}")
    assert status == 200
    assert created["id"] == order_id
    assert created["state"] == "draft"
    assert created["external_identifier"] == "SHOP-1"
    assert created["customer"]["email"] == "max@example.com"
    assert created["items"][0]["quantity"] == 3
    # No billing address given: it is the shipping address.
    assert created["billing_address"]["street1"] == "Am Wassermann 361"
    assert created["shipments"][0]["shipping_method"]["handle"] == "shipping-method-handle"
    assert created["shipments"][0]["tracking_number"] is None
    assert rig.sim.ledger.created_count("SHOP-1") == 1
    assert (await rig.get("/orders/999"))[0] == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer": {}}, "customer.email"),
        ({"customer": {"email": "not-an-email"}}, "customer.email"),
        ({"items": []}, "items"),
        ({"items": [{"variant": VARIANT, "quantity": 0}]}, "items.0.quantity"),
        ({"items": [{"variant": VARIANT, "quantity": 1.5}]}, "items.0.quantity"),
        ({"items": [{"variant": {"type": "basic"}, "quantity": 1}]}, "items.0.variant.id"),
        ({"items": [{"variant": {**VARIANT, "type": "fancy"}, "quantity": 1}]},
         "items.0.variant.type"),
        ({"shipping_address": None}, "shipping_address"),
        ({"shipping_address": {**ORDER["shipping_address"], "street1": "x" * 36}},
         "shipping_address.street1"),
        ({"shipping_address": {**ORDER["shipping_address"], "country_code": "DEU"}},
         "shipping_address.country_code"),
        ({"shipping_address": {**ORDER["shipping_address"], "phone": None}},
         "shipping_address.phone"),
        ({"billing_address": {"first_name": "Max"}}, "billing_address.last_name"),
        ({"payments": []}, "payments"),
        ({"shipments": [{"shipping_method": {}}]}, "shipments.0.shipping_method.handle"),
        ({"external_identifier": 17}, "external_identifier"),
    ],
)
async def test_a_bad_create_body_is_422_with_errors_per_field(
    rig: Rig, changes: dict[str, Any], field: str
) -> None:
    async with rig.http.post(f"{rig.base}/orders", json=order(**changes), headers=AUTH) as resp:
        assert resp.status == 422
        answer = await resp.json()
    assert field in answer["errors"], answer
    assert answer["message"]
    assert rig.sim.orders == {}


async def test_422_message_counts_the_other_errors(rig: Rig) -> None:
    async with rig.http.post(f"{rig.base}/orders", json={}, headers=AUTH) as resp:
        answer = await resp.json()
    assert answer["message"].startswith("The customer field is required. (and ")
    required = {"customer", "items", "shipping_address", "payments", "shipments"}
    assert required <= set(answer["errors"])


async def test_a_variant_may_be_named_by_origin(rig: Rig) -> None:
    items = [
        {"variant": {"type": "basic", "origin": {"sku": "CAP-02-SMK"}}, "quantity": 1},
        {"variant": {"type": "basic", "origin": {"external_identifier": "v-9"}}, "quantity": 2},
    ]
    order_id = await rig.create(order(items=items))
    _, created = await rig.get(f"/orders/{order_id}")
    assert [item["quantity"] for item in created["items"]] == [1, 2]
    assert all(isinstance(item["variant"], int) for item in created["items"])


async def test_an_order_walks_through_its_states(rig: Rig) -> None:
    order_id = await rig.create(order(external_identifier="SHOP-1"))
    seen = []
    for _ in range(5):
        _, current = await rig.get(f"/orders/{order_id}")
        seen.append(current["state"])
        rig.clock.advance(STEP_S)
    assert seen == ["draft", "checking", "preparing", "prepared", "completed"]
    assert current["shipments"][0]["tracking_number"]
    assert current["failure_message"] is None


async def test_a_failing_order_ends_failed_after_checking(rig: Rig) -> None:
    rig.sim.failure_rate = 1.0
    order_id = await rig.create(order())
    rig.clock.advance(2 * STEP_S)
    _, failed = await rig.get(f"/orders/{order_id}")
    assert failed["state"] == "failed"
    assert failed["failure_message"] == FAILURE_MESSAGE
    rig.clock.advance(10 * STEP_S)
    assert rig.sim.state_of(order_id) == "failed"


async def test_external_identifier_is_not_unique_and_the_filter_finds_every_order(rig: Rig) -> None:
    first = await rig.create(order(external_identifier="SHOP-1"))
    await rig.create(order(external_identifier="SHOP-2"))
    second = await rig.create(order(external_identifier="SHOP-1"))
    _, found = await rig.get("/orders?filter[external_identifier]=SHOP-1")
    assert [o["id"] for o in found["data"]] == [second, first]  # newest first
    _, none = await rig.get("/orders?filter[external_identifier]=SHOP-9")
    assert none["data"] == []
    assert rig.sim.ledger.duplicates() == {"SHOP-1": 2}


async def test_the_external_identifier_filter_matches_parts_longer_values_first(rig: Rig) -> None:
    # "Looks for a part in the attribute value": for 1001, 10010 and X1001-b match too.
    exact = await rig.create(order(external_identifier="1001"))
    longer = await rig.create(order(external_identifier="X1001-b"))
    near = await rig.create(order(external_identifier="10010"))
    await rig.create(order(external_identifier="2002"))
    _, found = await rig.get("/orders?filter[external_identifier]=1001&per_page=2")
    assert [o["id"] for o in found["data"]] == [longer, near]
    assert found["links"]["next"] is not None
    _, last = await rig.get("/orders?filter[external_identifier]=1001&per_page=2&page=2")
    assert [o["id"] for o in last["data"]] == [exact] and last["links"]["next"] is None
    rig.sim.partial_match_filters = False
    _, exactly = await rig.get("/orders?filter[external_identifier]=1001")
    assert [o["id"] for o in exactly["data"]] == [exact]


async def test_tracking_numbers_can_appear_after_completion(rig: Rig) -> None:
    rig.sim.tracking_delay_s = 30.0
    created = await rig.create(order())
    completes_at = rig.sim.orders[created].timeline[-1][0]
    rig.clock.advance(completes_at - rig.clock() + 1.0)
    _, completed = await rig.get(f"/orders/{created}")
    assert completed["state"] == "completed"
    assert [s["tracking_number"] for s in completed["shipments"]] == [None]
    rig.clock.advance(30.0)
    _, later = await rig.get(f"/orders/{created}")
    assert all(s["tracking_number"] for s in later["shipments"])


async def test_filters_by_id_state_reference_and_since_id(rig: Rig) -> None:
    ids = [await rig.create(order(external_reference=f"ref-{n % 2}")) for n in range(4)]
    rig.clock.advance(STEP_S)
    late = await rig.create(order())
    _, by_id = await rig.get(f"/orders?filter[id]={ids[0]},{ids[2]}")
    assert [o["id"] for o in by_id["data"]] == [ids[0], ids[2]]
    _, checking = await rig.get("/orders?filter[state]=checking")
    assert [o["id"] for o in checking["data"]] == ids
    _, draft = await rig.get("/orders?filter[state]=draft")
    assert [o["id"] for o in draft["data"]] == [late]
    _, ref = await rig.get("/orders?filter[external_reference]=ref-1")
    assert [o["id"] for o in ref["data"]] == [ids[1], ids[3]]
    _, since = await rig.get(f"/orders?filter[since_id]={ids[2]}")
    assert [o["id"] for o in since["data"]] == [ids[3], late]
    status, _ = await rig.get("/orders?filter[colour]=red")
    assert status == 400
    status, _ = await rig.get("/orders?filter[id]=abc")
    assert status == 400


async def test_lists_page_with_data_links_and_meta(rig: Rig) -> None:
    for _ in range(30):
        await rig.create(order())
    _, first = await rig.get("/orders")
    assert len(first["data"]) == 25
    assert first["meta"] == {
        "current_page": 1, "from": 1, "path": f"{rig.base}/orders", "per_page": 25, "to": 25,
    }
    assert first["links"]["prev"] is None
    assert first["links"]["next"] == f"{rig.base}/orders?page=2"
    _, second = await rig.get("/orders?per_page=25&page=2")
    assert [o["id"] for o in second["data"]] == list(range(26, 31))
    assert second["links"]["next"] is None
    assert second["links"]["prev"] == f"{rig.base}/orders?per_page=25&page=1"
    assert (second["meta"]["from"], second["meta"]["to"]) == (26, 30)
    _, small = await rig.get("/orders?per_page=100")
    assert len(small["data"]) == 30
    assert (await rig.get("/orders?per_page=101"))[0] == 422


async def test_cancel_until_the_order_is_done(rig: Rig) -> None:
    order_id = await rig.create(order())
    async with rig.http.put(f"{rig.base}/orders/{order_id}/cancel", headers=AUTH) as resp:
        assert resp.status == 200
        cancelled = await resp.json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["cancelled_at"] is not None
    rig.clock.advance(10 * STEP_S)
    assert rig.sim.state_of(order_id) == "cancelled"
    async with rig.http.put(f"{rig.base}/orders/{order_id}/cancel", headers=AUTH) as resp:
        assert resp.status == 422
        answer = await resp.json()
    assert answer["errors"]["state"] == ["The order is cancelled and can no longer be cancelled."]

    done = await rig.create(order())
    rig.clock.advance(4 * STEP_S)
    assert rig.sim.state_of(done) == "completed"
    async with rig.http.put(f"{rig.base}/orders/{done}/cancel", headers=AUTH) as resp:
        assert resp.status == 422
    async with rig.http.put(f"{rig.base}/orders/999/cancel", headers=AUTH) as resp:
        assert resp.status == 404


async def test_payment_and_shipping_handles_can_be_restricted(rig: Rig) -> None:
    rig.sim.payment_methods = {"invoice"}
    async with rig.http.post(f"{rig.base}/orders", json=order(), headers=AUTH) as resp:
        assert resp.status == 422
        assert "payments.0.payment_method.handle" in (await resp.json())["errors"]
    payments = [{"payment_method": {"handle": "invoice"}}]
    await rig.create(order(payments=payments))
