"""Orders fan out to Zakeke, Smake and Reevoo; each pair progresses on its own."""

from __future__ import annotations

import aiohttp
import pytest
from conftest import produce, service_env, settings_from

from orderflow.consumer.app import Application
from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import FAILURE_MESSAGE, SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = pytest.mark.integration


class Sandbox:
    def __init__(self, *, smake_failure_rate: float = 0.0) -> None:
        self.zakeke = SimulatorServer(ZakekeSimulator(print_files_delay_s=0.5))
        self.smake = SimulatorServer(SmakeSimulator(seconds_per_state=0.2,
                                                    failure_rate=smake_failure_rate, seed=5))
        self.reevoo = SimulatorServer(ReevooSimulator())

    async def __aenter__(self) -> Sandbox:
        for server in (self.zakeke, self.smake, self.reevoo):
            await server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in (self.zakeke, self.smake, self.reevoo):
            await server.stop()

    def urls(self) -> dict[str, str]:
        return {"zakeke": self.zakeke.base_url, "smake": self.smake.base_url,
                "reevoo": self.reevoo.base_url}


async def run_service(broker, topics, monkeypatch, sandbox: Sandbox, events, pairs, timeout_s=60):
    app = Application(settings_from(service_env(broker, topics, **sandbox.urls()), monkeypatch))
    reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
    await app.start()
    await reader.start()
    try:
        await produce(broker.bootstrap_servers, topics.orders_created, events)
        finished = await reader.wait_for(pairs, timeout_s=timeout_s)
    finally:
        await reader.stop()
        await app.stop()
    assert finished, f"unfinished pairs: {sorted(pairs - reader.outcomes.finished_pairs())[:5]}"
    return reader.outcomes


async def test_mixed_orders_reach_each_vendor_once_with_one_terminal_status_each(
        broker, topics, monkeypatch):
    events = sample_orders(30, seed=21, prefix="MIX", shape="mixed")
    orders = [e["order"]["order_id"] for e in events]
    pairs = {(o, v) for o in orders for v in ("zakeke", "smake", "reevoo")}
    async with Sandbox(smake_failure_rate=0.3) as sandbox:
        outcomes = await run_service(broker, topics, monkeypatch, sandbox, events, pairs)
        for server in (sandbox.zakeke, sandbox.smake, sandbox.reevoo):
            assert server.state.ledger.duplicates() == {}
            assert server.state.ledger.total_created == len(orders)

    assert outcomes.pairs_with_several_terminals() == set()
    for pair in pairs:
        assert outcomes.statuses[pair][0] == "submitted", (pair, outcomes.statuses[pair])
    smake_outcomes = {outcomes.terminal_status[(o, "smake")] for o in orders}
    assert smake_outcomes == {"completed", "failed"}
    for order_id in orders:
        if outcomes.terminal_status[(order_id, "smake")] == "failed":
            assert outcomes.reasons[(order_id, "smake")] == FAILURE_MESSAGE
        else:
            assert "in_progress" in outcomes.statuses[(order_id, "smake")]
        assert outcomes.terminal_status[(order_id, "reevoo")] == "completed"
        assert outcomes.terminal_status[(order_id, "zakeke")] == "completed"


async def test_order_already_at_smake_is_adopted_not_created_again(broker, topics, monkeypatch):
    events = sample_orders(1, seed=22, prefix="ADOPT", shape="smake")
    order_id = events[0]["order"]["order_id"]
    async with Sandbox() as sandbox:
        # Smake already holds this order (say, a previous run created it and crashed).
        body = {"customer": {"email": "a@example.com"}, "external_identifier": order_id,
                "items": [{"variant": {"type": "basic", "id": 25}, "quantity": 1}],
                "shipping_address": {"first_name": "A", "last_name": "B", "street1": "S 1",
                                     "zip": "1", "city": "C", "country_code": "DE", "phone": "1",
                                     "email": "a@example.com"},
                "payments": [{"payment_method": {"handle": "invoice"}}],
                "shipments": [{"shipping_method": {"handle": "standard"}}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(sandbox.smake.base_url + "/orders", json=body,
                                 headers={"Authorization": "Bearer smake-sim-key"}) as answer:
                assert answer.status == 202
                existing_id = answer.headers["X-Identifier"]
        pairs = {(order_id, "smake"), (order_id, "reevoo")}
        outcomes = await run_service(broker, topics, monkeypatch, sandbox, events, pairs)
        assert sandbox.smake.state.ledger.created_count(order_id) == 1
        held = sandbox.smake.state.orders_with_external_identifier(order_id)
        assert [str(order.id) for order in held] == [existing_id]

    assert outcomes.terminal_status[(order_id, "smake")] == "completed"


async def test_smake_outage_delays_only_smake_pairs(broker, topics, monkeypatch):
    events = sample_orders(20, seed=23, prefix="OUT", shape="mixed")
    orders = [e["order"]["order_id"] for e in events]
    others = {(o, v) for o in orders for v in ("zakeke", "reevoo")}
    smake_pairs = {(o, "smake") for o in orders}
    async with Sandbox() as sandbox:
        sandbox.smake.state.knobs.outage_on()  # every Smake request answers 503
        app = Application(settings_from(service_env(broker, topics, **sandbox.urls()), monkeypatch))
        reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
        await app.start()
        await reader.start()
        try:
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            assert await reader.wait_for(others, timeout_s=60), "Zakeke/Reevoo waited on Smake"
            assert not (smake_pairs & reader.outcomes.finished_pairs())
            assert not any(pair in reader.outcomes.statuses for pair in smake_pairs)
            sandbox.smake.state.knobs.outage_off()
            assert await reader.wait_for(smake_pairs, timeout_s=60), "Smake did not recover"
        finally:
            await reader.stop()
            await app.stop()
        assert sandbox.smake.state.ledger.duplicates() == {}
        assert sandbox.smake.state.ledger.total_created == len(orders)
