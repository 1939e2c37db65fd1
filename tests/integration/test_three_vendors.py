"""Orders fan out to Zakeke, Smake and Reevoo; each pair progresses on its own."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import produce, running_service, service_env, settings_from

from orderflow.sandbox.outcomes import OutputReader, read_topic
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import FAILURE_MESSAGE, SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = pytest.mark.integration


class Sandbox:
    def __init__(self, *, smake_failure_rate: float = 0.0, second_parcel_rate: float = 0.0) -> None:
        # The vendors as they really are (world.py): read lag, partial filters, handles.
        self.zakeke = SimulatorServer(ZakekeSimulator(print_files_delay_s=0.5,
                                                      **world.zakeke_options()))
        self.smake = SimulatorServer(SmakeSimulator(seconds_per_state=0.2,
                                                    failure_rate=smake_failure_rate, seed=5,
                                                    second_parcel_rate=second_parcel_rate,
                                                    **world.smake_options()))
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


async def run_service(broker, topics, monkeypatch, sandbox: Sandbox, events, pairs, timeout_s=60,
                      then=None, env=None):
    """Run the service until every pair ended, then (optionally) until `then(reader)` returns."""
    settings = settings_from(service_env(broker, topics, **sandbox.urls()) | (env or {}),
                             monkeypatch)
    async with running_service(broker, topics, settings) as (_app, reader):
        await produce(broker.bootstrap_servers, topics.orders_created, events)
        finished = await reader.wait_for(pairs, timeout_s=timeout_s)
        if finished and then is not None:
            await then(reader)
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


async def test_a_smake_create_whose_answer_was_lost_is_adopted_not_created_again(
        broker, topics, monkeypatch):
    events = sample_orders(3, seed=22, prefix="ADOPT", shape="smake")
    orders = [event["order"]["order_id"] for event in events]
    async with Sandbox() as sandbox:
        # Smake creates every order, then its answer is lost (a 5xx after the effect): the
        # recorded intent makes the retry ask first, through every page of the partial-match
        # filter, and adopt what Smake holds.
        sandbox.smake.state.knobs.fail_after_effect_rate = 1.0
        sandbox.smake.state.knobs.fail_after_effect_mode = "error"
        pairs = {(order_id, vendor) for order_id in orders for vendor in ("smake", "reevoo")}
        outcomes = await run_service(broker, topics, monkeypatch, sandbox, events, pairs)
        for order_id in orders:
            assert sandbox.smake.state.ledger.created_count(order_id) == 1
        assert sandbox.smake.state.ledger.request_count("create_order") == len(orders)

    for order_id in orders:
        assert outcomes.terminal_status[(order_id, "smake")] == "completed"


async def test_smake_tracking_numbers_that_come_after_completion_are_announced(
        broker, topics, monkeypatch):
    events = sample_orders(5, seed=24, prefix="TRACK", shape="smake")
    orders = [event["order"]["order_id"] for event in events]
    pairs = {(order_id, vendor) for order_id in orders for vendor in ("smake", "reevoo")}
    async def until_tracking_numbers_came(reader: OutputReader) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while reader.outcomes.completed_without_tracking("smake"):
            assert asyncio.get_running_loop().time() < deadline, "no tracking numbers came"
            await reader.poll()

    async with Sandbox() as sandbox:
        assert sandbox.smake.state.tracking_delay_s > 0  # numbers come after completion
        outcomes = await run_service(broker, topics, monkeypatch, sandbox, events, pairs,
                                     then=until_tracking_numbers_came)
    for order_id in orders:
        # One terminal status, completed and without numbers; then the numbers, once.
        assert outcomes.terminal_status[(order_id, "smake")] == "completed"
        assert len(outcomes.terminal_ids[(order_id, "smake")]) == 1
        (numbers,) = outcomes.shipment_tracking[(order_id, "smake")]
        assert numbers and all(number.startswith("SMK") for number in numbers)


async def test_smake_outage_delays_only_smake_pairs(broker, topics, monkeypatch):
    events = sample_orders(20, seed=23, prefix="OUT", shape="mixed")
    orders = [e["order"]["order_id"] for e in events]
    others = {(o, v) for o in orders for v in ("zakeke", "reevoo")}
    smake_pairs = {(o, "smake") for o in orders}
    async with Sandbox() as sandbox:
        sandbox.smake.state.knobs.outage_on()  # every Smake request answers 503
        settings = settings_from(service_env(broker, topics, **sandbox.urls()), monkeypatch)
        async with running_service(broker, topics, settings) as (_app, reader):
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            assert await reader.wait_for(others, timeout_s=60), "Zakeke/Reevoo waited on Smake"
            assert not (smake_pairs & reader.outcomes.finished_pairs())
            assert not any(pair in reader.outcomes.statuses for pair in smake_pairs)
            sandbox.smake.state.knobs.outage_off()
            assert await reader.wait_for(smake_pairs, timeout_s=60), "Smake did not recover"
        assert sandbox.smake.state.ledger.duplicates() == {}
        assert sandbox.smake.state.ledger.total_created == len(orders)


async def test_with_submit_on_fulfilled_reviews_follow_the_production_and_never_a_failed_one(
        broker, topics, monkeypatch):
    """Contract, "One order, one flow": with ORDERFLOW_REEVOO__SUBMIT_ON=fulfilled an order
    with a Smake pair goes to Reevoo only once that pair is completed, with fulfilment_date;
    if the Smake pair ends any other way, the Reevoo pair ends cancelled and Reevoo is
    never called."""
    events = sample_orders(16, seed=25, prefix="FULFIL", shape="smake")
    orders = [event["order"]["order_id"] for event in events]
    pairs = {(order_id, vendor) for order_id in orders for vendor in ("smake", "reevoo")}
    async with Sandbox(smake_failure_rate=0.4) as sandbox:
        outcomes = await run_service(broker, topics, monkeypatch, sandbox, events, pairs,
                                     env={"ORDERFLOW_REEVOO__SUBMIT_ON": "fulfilled"})
        submissions = {order_id: sandbox.reevoo.state.submissions_for(order_id)
                       for order_id in orders}
    # Per order, its status events in the order they were published (one partition, by key).
    published: dict[str, list[tuple[str, str]]] = {}
    for record in await read_topic(broker.bootstrap_servers, topics.status):
        event = json.loads(record.value)
        if "status" in event:
            published.setdefault(event["order_id"], []).append((event["vendor"], event["status"]))
    produced = {o for o in orders if outcomes.terminal_status[(o, "smake")] == "completed"}
    assert produced and produced != set(orders), "the run should hold both kinds of order"
    for order_id in orders:
        if order_id in produced:
            [sent] = submissions[order_id]
            assert sent.body.get("fulfilment_date"), sent.body
            order_events = published[order_id]
            assert (order_events.index(("smake", "completed"))
                    < order_events.index(("reevoo", "submitted"))), order_events
            assert outcomes.terminal_status[(order_id, "reevoo")] == "completed"
        else:
            assert submissions[order_id] == [], "a review request for an order never produced"
            assert outcomes.terminal_status[(order_id, "reevoo")] == "cancelled"
            assert outcomes.reasons[(order_id, "reevoo")].startswith(
                "the order was never fulfilled")


async def test_a_second_parcel_is_announced_when_its_number_comes(broker, topics, monkeypatch):
    """Contract: "each new set of numbers is one more `order.shipment_tracking` (until every
    shipment has a number ...)", carrying the full set and `shipments[]` with the carrier."""
    events = sample_orders(4, seed=26, prefix="PARCEL", shape="smake")
    orders = [event["order"]["order_id"] for event in events]
    pairs = {(order_id, vendor) for order_id in orders for vendor in ("smake", "reevoo")}

    async def until_both_parcels(reader: OutputReader) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while any(len(reader.outcomes.shipment_tracking.get((o, "smake"), [])) < 2 for o in orders):
            assert asyncio.get_running_loop().time() < deadline, "the second parcel was never announced"
            await reader.poll()

    async with Sandbox(second_parcel_rate=1.0) as sandbox:
        await run_service(broker, topics, monkeypatch, sandbox, events, pairs,
                          then=until_both_parcels)
    announced = [json.loads(record.value)
                 for record in await read_topic(broker.bootstrap_servers, topics.status)
                 if json.loads(record.value)["event_type"] == "order.shipment_tracking"]
    for order_id in orders:
        mine = [event for event in announced if event["order_id"] == order_id]
        first, second = mine[0], mine[-1]
        assert len(first["tracking_numbers"]) == 1 and len(second["tracking_numbers"]) == 2
        assert set(first["tracking_numbers"]) < set(second["tracking_numbers"])
        assert [s["carrier_handle"] for s in second["shipments"]] == [
            s["carrier_handle"] for s in second["shipments"][:1]] * 2
        assert all(s["tracking_number"] and s["carrier_title"] for s in second["shipments"])
