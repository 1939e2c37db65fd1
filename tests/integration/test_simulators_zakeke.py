"""The Zakeke simulator over real HTTP: what its documents promise, and nothing kinder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from orderflow.sandbox.simulators.base import ManualClock, SimulatorServer
from orderflow.sandbox.simulators.zakeke import (
    NEEDS_MODIFICATION_ID,
    NO_CODE_IN_TOKEN,
    ZakekeSimulator,
)

CLIENT = {"Authorization": aiohttp.encode_basic_auth("zakeke-sim-client", "zakeke-sim-secret")}
DELAY_S = 5.0
DETAIL = {"designID": "D", "modelUnitPrice": 1, "designUnitPrice": 1, "quantity": 1}


@dataclass
class Rig:
    sim: ZakekeSimulator
    server: SimulatorServer[ZakekeSimulator]
    clock: ManualClock
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return self.server.base_url

    async def token(self, **codes: str) -> str:
        form = {"grant_type": "client_credentials", "access_type": "S2S", **codes}
        async with self.http.post(f"{self.base}/token", data=form, headers=CLIENT) as resp:
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["access_token"])

    async def register(self, body: dict[str, Any], token: str) -> aiohttp.ClientResponse:
        url = f"{self.base}/v2/order"
        async with self.http.post(url, json=body, headers=bearer(token)) as resp:
            await resp.read()
            return resp

    async def get(self, path: str, token: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}", headers=bearer(token)) as resp:
            return resp.status, await resp.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def order_body(code: str = "SHOP-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "orderCode": code,
        "orderDate": "2023-11-03T09:13:38.437Z",
        "sessionID": "sess-1",
        "total": 32.0,
        "details": [{
            "orderDetailCode": "L1",
            "sku": "TSHIRT-BLK-M",
            "designID": "000-design-A",
            "modelUnitPrice": 12.0,
            "designUnitPrice": 4.0,
            "quantity": 2,
        }],
    }
    body.update(changes)
    return body


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock()
    sim = ZakekeSimulator(clock=clock, print_files_delay_s=DELAY_S, seed=1)
    async with SimulatorServer(sim) as server, aiohttp.ClientSession() as http:
        yield Rig(sim, server, clock, http)


async def test_token_needs_the_client_credentials_and_the_s2s_grant(rig: Rig) -> None:
    form = {"grant_type": "client_credentials", "access_type": "S2S"}
    wrong = {"Authorization": aiohttp.encode_basic_auth("zakeke-sim-client", "nope")}
    async with rig.http.post(f"{rig.base}/token", data=form, headers=wrong) as resp:
        assert resp.status == 401
    async with rig.http.post(f"{rig.base}/token", data=form) as resp:
        assert resp.status == 401
    bad_grant = {**form, "grant_type": "password"}
    async with rig.http.post(f"{rig.base}/token", data=bad_grant, headers=CLIENT) as resp:
        assert resp.status == 400
    async with rig.http.post(f"{rig.base}/token", data=form, headers=CLIENT) as resp:
        answer = await resp.json()
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 3600
    assert answer["access_token"]


async def test_token_answer_can_use_the_other_spelling(rig: Rig) -> None:
    rig.sim.token_field = "access-token"
    form = {"grant_type": "client_credentials", "access_type": "S2S"}
    async with rig.http.post(f"{rig.base}/token", data=form, headers=CLIENT) as resp:
        answer = await resp.json()
    assert "access_token" not in answer
    status, _ = await rig.get("/v2/orders", answer["access-token"])
    assert status == 200


async def test_an_expired_or_unknown_token_gets_401(rig: Rig) -> None:
    rig.sim.token_expires_in_s = 2
    token = await rig.token(customercode="C-1")
    assert (await rig.get("/v2/orders", token))[0] == 200
    rig.clock.advance(2.5)
    assert (await rig.get("/v2/orders", token))[0] == 401
    assert (await rig.register(order_body(), token)).status == 401
    assert (await rig.get("/v2/orders", "never-issued"))[0] == 401
    assert rig.sim.ledger.total_created == 0


async def test_registration_needs_a_customer_or_visitor_code_in_the_token(rig: Rig) -> None:
    plain = await rig.token()
    async with rig.http.post(
        f"{rig.base}/v2/order", json=order_body(), headers=bearer(plain)
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"] == NO_CODE_IN_TOKEN
    for codes in ({"customercode": "C-1"}, {"visitorcode": "V-1"}, {"usercode": "U-1"}):
        token = await rig.token(**codes)
        assert (await rig.register(order_body(f"SHOP-{codes}"), token)).status == 200
    assert rig.sim.ledger.total_created == 3


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"orderCode": ""}, "orderCode"),
        ({"orderDate": "03/11/2023"}, "orderDate"),
        ({"sessionID": None}, "sessionID"),
        ({"total": "32.00"}, "total"),
        ({"details": [], "compositionDetails": []}, "no details"),
        ({"details": [{**DETAIL, "quantity": 0}]}, "quantity"),
        ({"details": [{**DETAIL, "quantity": 1.0}]}, "quantity"),
        ({"details": [{**DETAIL, "modelUnitPrice": "1"}]}, "modelUnitPrice"),
        ({"details": [{**DETAIL, "designUnitPrice": None}]}, "designUnitPrice"),
        ({"details": [{**DETAIL, "designID": None}]}, "designID"),
        ({"details": None, "compositionDetails": [{"composition": "C", "quantity": 1}]},
         "unitPrice"),
    ],
)
async def test_registration_body_is_validated(
    rig: Rig, changes: dict[str, Any], expected: str
) -> None:
    token = await rig.token(customercode="C-1")
    async with rig.http.post(
        f"{rig.base}/v2/order", json=order_body(**changes), headers=bearer(token)
    ) as resp:
        assert resp.status == 400
        answer = await resp.json()
    assert expected in answer["message"]
    assert answer["errorCode"] is None
    assert rig.sim.ledger.total_created == 0


async def test_an_unknown_design_is_refused_when_designs_are_known(rig: Rig) -> None:
    rig.sim.known_designs = {"000-design-B"}
    token = await rig.token(customercode="C-1")
    async with rig.http.post(
        f"{rig.base}/v2/order", json=order_body(), headers=bearer(token)
    ) as resp:
        assert resp.status == 400
        answer = await resp.json()
    assert answer == {"message": "Design id: 000-design-A not found", "errorCode": None}


async def test_registration_answers_an_empty_200_and_the_order_reads_back(rig: Rig) -> None:
    token = await rig.token(customercode="C-1")
    resp = await rig.register(order_body(), token)
    assert resp.status == 200
    assert resp.content_length in (0, None)

    status, order = await rig.get("/v2/order/SHOP-1", token)
    assert status == 200
    assert isinstance(order["id"], int)
    assert order["code"] == "SHOP-1"
    assert order["orderDate"] == "2023-11-03T09:13:38.437Z"
    (item,) = order["items"]
    assert item["code"] == "L1"
    assert item["productSku"] == "TSHIRT-BLK-M"
    assert item["design"] == "000-design-A"
    assert item["quantity"] == 2
    assert item["price"] == {"value": 32.0, "currency": "EUR"}
    assert item["printFilesStatus"] == "INPROCESS"
    assert item["printingFilesZip"] is None
    assert item["printingFiles"] == []

    assert (await rig.get(f"/v2/orders/{order['id']}", token)) == (200, order)
    assert (await rig.get("/v2/order/SHOP-404", token))[0] == 404
    assert (await rig.get("/v2/orders/999", token))[0] == 404


async def test_print_files_are_404_until_ready(rig: Rig) -> None:
    token = await rig.token(customercode="C-1")
    await rig.register(order_body(), token)
    assert (await rig.get("/v1/designs/000-design-A/outputfiles/zip", token))[0] == 404
    assert (await rig.get("/v1/designs/000-design-A/outputfiles/PDF", token))[0] == 404

    rig.clock.advance(DELAY_S)
    _, order = await rig.get("/v2/order/SHOP-1", token)
    (item,) = order["items"]
    assert item["printFilesStatus"] == "READY"
    assert item["printingFilesZip"] == f"{rig.server.root_url}/files/print/000-design-A.zip"
    assert item["printingFiles"] == [
        {"type": "PDF", "url": f"{rig.server.root_url}/files/print/000-design-A.pdf"},
        {"type": "PNG", "url": f"{rig.server.root_url}/files/print/000-design-A.png"},
    ]
    assert await rig.get("/v1/designs/000-design-A/outputfiles/zip", token) == (
        200, {"url": item["printingFilesZip"]}
    )
    assert await rig.get("/v1/designs/000-design-A/outputfiles/pdf", token) == (
        200, item["printingFiles"][0]["url"]
    )
    # A format Zakeke knows but did not produce; and one it does not know.
    assert (await rig.get("/v1/designs/000-design-A/outputfiles/SVG", token))[0] == 404
    assert (await rig.get("/v1/designs/000-design-A/outputfiles/GIF", token))[0] == 400
    assert (await rig.get("/v1/designs/000-design-Z/outputfiles/zip", token))[0] == 404
    async with rig.http.get(item["printingFilesZip"]) as resp:
        assert resp.status == 200


async def test_files_of_a_design_with_modifications_need_the_modification(rig: Rig) -> None:
    token = await rig.token(visitorcode="V-1")
    detail = {**order_body()["details"][0], "designModificationID": "MOD-7"}
    await rig.register(order_body(details=[detail]), token)
    rig.clock.advance(DELAY_S)
    status, answer = await rig.get("/v1/designs/000-design-A/outputfiles/zip", token)
    assert (status, answer["message"]) == (400, NEEDS_MODIFICATION_ID)
    status, answer = await rig.get("/v1/designs/000-design-A/outputfiles/zip/MOD-7", token)
    assert (status, answer["url"].rsplit("/", 1)[1]) == (200, "000-design-A-MOD-7.zip")
    path = "/v1/designs/000-design-A/outputfiles/PNG?modificationID=MOD-7"
    status, url = await rig.get(path, token)
    assert (status, url.rsplit("/", 1)[1]) == (200, "000-design-A-MOD-7.png")
    assert (await rig.get("/v1/designs/000-design-A/outputfiles/zip/MOD-8", token))[0] == 404


async def test_composition_lines_also_get_files(rig: Rig) -> None:
    token = await rig.token(customercode="C-1")
    composition = {
        "orderDetailCode": "L2", "composition": "315-abc", "unitPrice": 9.9, "quantity": 1
    }
    await rig.register(order_body(details=None, compositionDetails=[composition]), token)
    _, order = await rig.get("/v2/order/SHOP-1", token)
    (item,) = order["items"]
    assert (item["design"], item["composition"], item["printFilesStatus"]) == (
        None, "315-abc", "INPROCESS"
    )
    rig.clock.advance(DELAY_S)
    _, order = await rig.get("/v2/order/SHOP-1", token)
    assert order["items"][0]["printFilesStatus"] == "READY"


async def test_a_second_registration_of_a_code_is_a_second_order(rig: Rig) -> None:
    token = await rig.token(customercode="C-1")
    assert (await rig.register(order_body(), token)).status == 200
    assert (await rig.register(order_body(), token)).status == 200
    assert len(rig.sim.orders_with_code("SHOP-1")) == 2
    assert rig.sim.ledger.created_count("SHOP-1") == 2
    assert rig.sim.ledger.duplicates() == {"SHOP-1": 2}


async def test_order_list_pages_newest_first_with_count_headers(rig: Rig) -> None:
    token = await rig.token(customercode="C-1")
    for n in range(5):
        await rig.register(order_body(f"SHOP-{n}"), token)
    async with rig.http.get(
        f"{rig.base}/v2/orders?pageSize=2&pageNumber=1", headers=bearer(token)
    ) as resp:
        page = await resp.json()
        assert resp.headers["X-Total-Count"] == "5"
        assert resp.headers["X-Has-More-Pages"] == "True"
    assert [o["code"] for o in page] == ["SHOP-4", "SHOP-3"]
    async with rig.http.get(
        f"{rig.base}/v2/orders?pageSize=2&pageNumber=3", headers=bearer(token)
    ) as resp:
        assert [o["code"] for o in await resp.json()] == ["SHOP-0"]
        assert resp.headers["X-Has-More-Pages"] == "False"
    assert len((await rig.get("/v2/orders", token))[1]) == 5


async def test_design_information(rig: Rig) -> None:
    token = await rig.token(customercode="C-1")
    status, design = await rig.get("/v3/designs/000-design-A/3?modificationID=M", token)
    assert status == 200
    assert design["designID"] == "000-design-A"
    assert design["designUnitPrice"] == 5.0
    assert design["customerCode"] == "C-1"
    assert (await rig.get("/v3/designs/000-design-A/0", token))[0] == 400
    rig.sim.known_designs = set()
    assert (await rig.get("/v3/designs/000-design-A/1", token))[0] == 404


async def test_ledger_counts_requests_by_route_and_status(rig: Rig) -> None:
    token = await rig.token(customercode="C-1")
    await rig.register(order_body(), token)
    await rig.get("/v2/order/SHOP-1", token)
    await rig.get("/v2/order/SHOP-2", token)
    ledger = rig.sim.ledger
    assert ledger.request_count("token", status=200) == 1
    assert ledger.request_count("create_order", method="POST", status=200) == 1
    assert ledger.request_count("get_order_by_code") == 2
    assert ledger.request_count("get_order_by_code", status=404) == 1
    async with rig.http.get(f"{rig.base}/_sim/ledger") as resp:
        summary = await resp.json()
    assert summary["vendor"] == "zakeke"
    assert summary["created"] == {"SHOP-1": 1}
    assert summary["requests"]["GET get_order_by_code"] == {"200": 1, "404": 1}
