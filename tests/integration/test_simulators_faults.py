"""What every simulator shares, over real HTTP: fault knobs, the ledger, the `/_sim/` control
API, and the standalone process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orderflow.sandbox.simulators import (
    STATUS_DROPPED,
    FaultKnobs,
    ManualClock,
    ReevooSimulator,
    SimulatorServer,
    SmakeSimulator,
)

AUTH = {"Authorization": aiohttp.encode_basic_auth("reevoo-sim-key", "reevoo-sim-secret")}
ORDER: dict[str, Any] = {
    "trkref": "TRKREF123",
    "order_ref": "R-1",
    "order_date": "10-12-2014",
    "customer": {"email": "john@example.com"},
    "order_items": [{"sku": "PROD1", "price": "55,99", "currency": "GBP"}],
}
ROUTE = "create_customer_order"
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    sim: ReevooSimulator
    server: SimulatorServer[ReevooSimulator]
    clock: ManualClock
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/v4/organisations/TRKREF123/customer_order"

    async def submit(self, timeout_s: float | None = None) -> aiohttp.ClientResponse:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.http.post(self.url, json=ORDER, headers=AUTH, timeout=timeout) as resp:
            await resp.read()
            return resp

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self.server.base_url}/_sim/{path}"
        async with self.http.request(method, url, json=body) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock()
    sim = ReevooSimulator(clock=clock, seed=11)
    async with SimulatorServer(sim) as server, aiohttp.ClientSession() as http:
        yield Rig(sim, server, clock, http)


async def test_error_rate_answers_5xx_with_a_json_body_and_no_effect(rig: Rig) -> None:
    rig.sim.knobs.error_rate = 1.0
    for _ in range(4):
        resp = await rig.submit()
        assert resp.status in (500, 503)
        assert resp.content_type == "application/json"
    assert rig.sim.ledger.total_created == 0
    assert rig.sim.submissions == []
    assert rig.sim.ledger.request_count(ROUTE) == 4
    rig.sim.knobs.error_rate = 0.0
    assert (await rig.submit()).status == 202


async def test_an_outage_answers_503_until_it_ends(rig: Rig) -> None:
    rig.sim.knobs.outage(30)
    assert (await rig.submit()).status == 503
    rig.clock.advance(30)
    assert (await rig.submit()).status == 202

    rig.sim.knobs.outage_on()
    rig.clock.advance(3600)
    assert (await rig.submit()).status == 503
    rig.sim.knobs.outage_off()
    assert (await rig.submit()).status == 202

    assert (await rig.control("POST", "faults", {"outage_s": 60}))[1]["outage_active"] is True
    assert (await rig.submit()).status == 503
    # The control API itself is never faulted.
    status, ledger = await rig.control("GET", "ledger")
    assert status == 200
    assert ledger["requests"][f"POST {ROUTE}"] == {"202": 2, "503": 3}
    assert (await rig.control("POST", "faults", {"outage_s": 0}))[1]["outage_active"] is False
    assert (await rig.submit()).status == 202


async def test_throttle_answers_429_with_retry_after(rig: Rig) -> None:
    status, faults = await rig.control("POST", "faults", {"throttle_s": 10, "retry_after_s": 2})
    assert (status, faults["throttle_active"], faults["retry_after_s"]) == (200, True, 2)
    resp = await rig.submit()
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "2"
    rig.clock.advance(10)
    assert (await rig.submit()).status == 202
    rig.sim.knobs.throttle(5, retry_after_s=0.3)  # whole seconds on the wire
    assert (await rig.submit()).headers["Retry-After"] == "1"
    assert rig.sim.ledger.total_created == 1


async def test_a_slow_answer_outlasts_the_client_and_then_does_nothing(rig: Rig) -> None:
    rig.sim.knobs.slow_rate = 1.0
    rig.sim.knobs.slow_s = 0.5
    with pytest.raises(asyncio.TimeoutError):
        await rig.submit(timeout_s=0.1)
    await asyncio.sleep(0.6)
    assert rig.sim.ledger.total_created == 0
    assert rig.sim.ledger.request_count(ROUTE, status=STATUS_DROPPED) == 1
    # A patient client gets the real answer, late.
    started = time.monotonic()
    assert (await rig.submit(timeout_s=5)).status == 202
    assert time.monotonic() - started >= 0.5
    assert rig.sim.ledger.created_count("R-1") == 1


async def test_latency_delays_every_answer(rig: Rig) -> None:
    rig.sim.knobs.latency_s = 0.2
    started = time.monotonic()
    assert (await rig.submit()).status == 202
    assert time.monotonic() - started >= 0.2


async def test_fail_after_effect_with_an_error_applies_the_effect(rig: Rig) -> None:
    rig.sim.knobs.fail_after_effect_rate = 1.0
    rig.sim.knobs.fail_after_effect_mode = "error"
    assert (await rig.submit()).status in (500, 503)
    assert rig.sim.ledger.created_count("R-1") == 1


async def test_fail_after_effect_with_a_drop_applies_the_effect(rig: Rig) -> None:
    rig.sim.knobs.fail_after_effect_rate = 1.0
    rig.sim.knobs.fail_after_effect_mode = "drop"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await rig.submit()
    assert rig.sim.ledger.created_count("R-1") == 1
    assert rig.sim.ledger.request_count(ROUTE, status=STATUS_DROPPED) == 1
    # Requests that create nothing are never chosen.
    async with rig.http.post(rig.url, json={}, headers=AUTH) as resp:
        assert resp.status == 422


async def test_fault_patch_is_validated_and_reset_restores_everything(rig: Rig) -> None:
    assert (await rig.control("POST", "faults", {"error_rate": 2}))[0] == 400
    assert (await rig.control("POST", "faults", {"no_such_knob": 1}))[0] == 400
    assert (await rig.control("POST", "faults", [1]))[0] == 400
    status, faults = await rig.control("POST", "faults", {"latency_s": 0.01, "seed": 4})
    assert (status, faults["latency_s"], faults["seed"]) == (200, 0.01, 4)
    assert (await rig.submit()).status == 202

    status, _ = await rig.control("POST", "reset")
    assert status == 200
    assert rig.sim.ledger.total_requests == 0
    assert rig.sim.submissions == []
    assert (await rig.control("GET", "faults"))[1]["latency_s"] == 0.0


async def test_vendor_settings_change_through_config(rig: Rig) -> None:
    status, config = await rig.control("GET", "config")
    assert (status, config) == (200, {"trkrefs": ["TRKREF123"], "access_denied": False})
    assert (await rig.control("POST", "config", {"access_denied": True}))[0] == 200
    assert (await rig.submit()).status == 403
    assert (await rig.control("POST", "config", {"nope": True}))[0] == 400


async def test_the_control_api_also_answers_under_the_api_prefix() -> None:
    async with SimulatorServer(SmakeSimulator()) as server, aiohttp.ClientSession() as http:
        for base in (server.root_url, server.base_url):
            async with http.get(f"{base}/_sim/ledger") as resp:
                assert (await resp.json())["vendor"] == "smake"


def test_knob_draws_are_reproducible_from_the_seed() -> None:
    def draws(knobs: FaultKnobs) -> list[object]:
        return [knobs.draw_fault() for _ in range(50)]

    one = FaultKnobs(error_rate=0.3, slow_rate=0.2, seed=9)
    two = FaultKnobs(error_rate=0.3, slow_rate=0.2, seed=9)
    assert draws(one) == draws(two)
    assert any(draws(one)) and None in draws(one)


def test_ledger_totals_and_duplicates() -> None:
    sim = ReevooSimulator()
    for key in ("A", "B", "A", "C", "A"):
        sim.ledger.record_create(key)
    assert sim.ledger.created_count("A") == 3
    assert sim.ledger.created_count("Z") == 0
    assert sim.ledger.duplicates() == {"A": 3}
    assert sim.ledger.total_created == 5
    assert sim.ledger.summary()["distinct_created"] == 3


async def test_standalone_process_serves_all_three_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orderflow.sandbox.simulators", "all", "--seed", "1",
        "--print-files-delay-s", "0.5",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPOSITORY,  # so that `-m` finds orderflow however pytest was started
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=15)
        urls = json.loads(line)
        assert set(urls) == {"zakeke", "smake", "reevoo"}
        assert urls["smake"].endswith("/v2/apps/1")
        async with aiohttp.ClientSession() as http:
            for vendor, url in urls.items():
                async with http.get(f"{url}/_sim/ledger") as resp:
                    assert (await resp.json())["vendor"] == vendor
            async with http.get(f"{urls['zakeke']}/_sim/config") as resp:
                assert (await resp.json())["print_files_delay_s"] == 0.5
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
