"""The Reevoo simulator over real HTTP: auth, TRKREF, the attribute table, single and batch."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator

AUTH = {"Authorization": aiohttp.encode_basic_auth("reevoo-sim-key", "reevoo-sim-secret")}

ORDER: dict[str, Any] = {
    "trkref": "TRKREF123",
    "order_ref": "ABC123",
    "order_date": "10-12-2014",
    "fulfilment_date": "24-12-2014",
    "language": "en",
    "locale": "en-GB",
    "customer": {
        "email": "john@example.com",
        "cutomer_ref": "1122",
        "title": "MR",
        "first_name": "John",
        "country": "GB",
    },
    "order_items": [
        {"sku": "PROD1", "price": "55,99", "currency": "GBP",
         "metadata": {"field_1": "Value 1", "field_2": "Value 2"}},
        {"sku": "PROD2", "price": "10", "currency": "GBP"},
    ],
}


def order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ORDER)
    body.update(changes)
    return body


@dataclass
class Rig:
    sim: ReevooSimulator
    server: SimulatorServer[ReevooSimulator]
    http: aiohttp.ClientSession

    def single_url(self, trkref: str = "TRKREF123") -> str:
        return f"{self.server.base_url}/v4/organisations/{trkref}/customer_order"

    @property
    def batch_url(self) -> str:
        return f"{self.server.base_url}/v4/customer_orders"

    async def submit(self, body: Any, url: str | None = None) -> tuple[int, Any]:
        async with self.http.post(url or self.single_url(), json=body, headers=AUTH) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = ReevooSimulator(seed=5)
    async with SimulatorServer(sim) as server, aiohttp.ClientSession() as http:
        yield Rig(sim, server, http)


async def test_the_documented_example_is_accepted_with_a_uuid(rig: Rig) -> None:
    status, answer = await rig.submit(order())
    assert status == 202
    assert answer["status"] == 202
    assert answer["message"] == "Customer order accepted"
    assert uuid.UUID(answer["id"]).version == 4
    (submission,) = rig.sim.submissions_for("ABC123")
    assert submission.id == answer["id"]
    assert rig.sim.ledger.created_count("ABC123") == 1


async def test_auth_and_access(rig: Rig) -> None:
    wrong = {"Authorization": aiohttp.encode_basic_auth("reevoo-sim-key", "nope")}
    async with rig.http.post(rig.single_url(), json=order(), headers=wrong) as resp:
        assert resp.status == 401
    async with rig.http.post(rig.single_url(), json=order()) as resp:
        assert resp.status == 401
    rig.sim.access_denied = True
    status, answer = await rig.submit(order())
    assert (status, answer["message"]) == (403, "Access denied")
    assert rig.sim.ledger.total_created == 0


@pytest.mark.parametrize("trkref", ["trkref123", "OTHER", "TRKREF12"])
async def test_an_unknown_trkref_in_the_path_is_400(rig: Rig, trkref: str) -> None:
    status, answer = await rig.submit(order(trkref=trkref), rig.single_url(trkref))
    assert (status, answer["message"]) == (400, "Invalid TRKREF supplied")


async def test_the_body_trkref_must_match_the_path(rig: Rig) -> None:
    rig.sim.trkrefs = {"TRKREF123", "ABC-XYZ"}
    status, answer = await rig.submit(order(trkref="ABC-XYZ"))
    assert (status, answer["message"]) == (400, "Invalid TRKREF supplied")
    assert (await rig.submit(order(trkref="ABC-XYZ"), rig.single_url("ABC-XYZ")))[0] == 202


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"order_ref": None}, "order_ref"),
        ({"order_date": "2014-12-10"}, "order_date"),
        ({"order_date": "31-02-2014"}, "order_date"),
        ({"order_date": None, "fulfilment_date": None}, "order_date or fulfilment_date"),
        ({"language": "EN"}, "language"),
        ({"locale": "en_GB"}, "locale"),
        ({"customer": {"email": "john.example.com"}}, "customer.email"),
        ({"customer": {"first_name": "John"}}, "customer.email"),
        ({"order_items": []}, "order_items"),
        ({"order_items": [{"price": "10"}]}, "order_items[0].sku"),
        ({"order_items": [{"sku": "P", "price": "55.99"}]}, "order_items[0].price"),
        ({"order_items": [{"sku": "P", "price": 10}]}, "order_items[0].price"),
        ({"order_items": [{"sku": "P", "currency": "gbp"}]}, "order_items[0].currency"),
        ({"order_items": [{"sku": "P", "metadata": {"Field-1": "x"}}]}, "metadata key"),
        ({"trkref": None}, "trkref"),
    ],
)
async def test_a_body_against_the_attribute_table_is_422(
    rig: Rig, changes: dict[str, Any], expected: str
) -> None:
    status, answer = await rig.submit(order(**changes))
    assert status == 422
    assert answer["message"]
    assert any(expected in error for error in answer["errors"]), answer
    assert rig.sim.submissions == []


async def test_both_spellings_of_the_customer_ref_and_either_date_alone(rig: Rig) -> None:
    customer = {"email": "john@example.com", "customer_ref": "1122"}
    assert (await rig.submit(order(customer=customer, order_date=None)))[0] == 202
    assert (await rig.submit(order(fulfilment_date=None)))[0] == 202


async def test_a_repeated_order_ref_is_another_submission(rig: Rig) -> None:
    first = await rig.submit(order())
    second = await rig.submit(order())
    assert first[0] == second[0] == 202
    assert first[1]["id"] != second[1]["id"]
    assert rig.sim.ledger.duplicates() == {"ABC123": 2}


async def test_batch_all_some_or_none_accepted(rig: Rig) -> None:
    good = [order(order_ref="B1"), order(order_ref="B2")]
    status, answer = await rig.submit(good, rig.batch_url)
    assert status == 202
    assert answer["summary"] == {"accepted": 2, "rejected": 0}
    assert [entry["order_ref"] for entry in answer["accepted"]] == ["B1", "B2"]

    mixed = [order(order_ref="B3"), order(order_ref="B4", order_date="2014-12-10"),
             order(order_ref="B5", trkref="NOPE")]
    status, answer = await rig.submit(mixed, rig.batch_url)
    assert status == 206
    assert answer["summary"] == {"accepted": 1, "rejected": 2}
    rejected = {entry["order_ref"]: entry["errors"] for entry in answer["rejected"]}
    assert rejected["B5"] == ["Invalid TRKREF supplied"]
    assert any("order_date" in error for error in rejected["B4"])

    status, answer = await rig.submit([order(order_ref="B6", customer={})], rig.batch_url)
    assert status == 422
    assert answer["summary"] == {"accepted": 0, "rejected": 1}
    assert answer["errors"]

    assert (await rig.submit({"not": "a list"}, rig.batch_url))[0] == 422
    assert (await rig.submit([], rig.batch_url))[0] == 422
    assert rig.sim.ledger.created == {"B1": 1, "B2": 1, "B3": 1}
