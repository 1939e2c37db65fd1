"""`order.cancelled` through the real service, a real broker and the vendor simulators over
HTTP (contract, "order.cancelled"): a cancellation on another partition than its order and
before it, one while Smake produces (cancelled at Smake), one after Smake could no longer
cancel (refused, followed to its end), `orderflow cancel`, and a repeated `order.created`
on another partition that creates no second vendor order."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from conftest import running_service, service_env, settings_from

from orderflow.operator import cancel as cancel_command
from orderflow.operator.report import Report
from orderflow.sandbox.outcomes import OutputReader, read_topic
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = pytest.mark.integration


def cancelled_event(order_id: str, reason: str = "customer asked to cancel") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": "order.cancelled",
            "schema_version": 1, "occurred_at": datetime.now(UTC).isoformat(),
            "order_id": order_id, "reason": reason}


async def send_to(bootstrap: str, topic: str, records: list[tuple[int, dict[str, Any]]]) -> None:
    """Each event to the partition given, whatever its key says (another partitioner)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, event in records:
            key = (event.get("order_id") or event["order"]["order_id"]).encode()
            await producer.send_and_wait(topic, json.dumps(event).encode(), key=key,
                                         partition=partition)
    finally:
        await producer.stop()


class Vendors:
    """The three simulators as the vendors really are (world.py), Smake slow to produce."""

    def __init__(self, *, seconds_per_state: float = 0.3,
                 cancellable: tuple[str, ...] = ("draft", "checking", "preparing", "prepared")):
        self.zakeke = ZakekeSimulator(print_files_delay_s=30.0, **world.zakeke_options())
        self.smake = SmakeSimulator(seconds_per_state=seconds_per_state, seed=5,
                                    cancellable_states=cancellable, **world.smake_options())
        self.reevoo = ReevooSimulator()
        self.servers = [SimulatorServer(s) for s in (self.zakeke, self.smake, self.reevoo)]

    async def __aenter__(self) -> Vendors:
        for server in self.servers:
            await server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            await server.stop()

    def urls(self) -> dict[str, str]:
        return dict(zip(("zakeke", "smake", "reevoo"),
                        (server.base_url for server in self.servers), strict=True))


async def until(check, what: str, reader: OutputReader, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"{what} within {timeout_s} s"
        await reader.poll()


async def test_a_cancellation_on_another_partition_before_its_order_means_nothing_is_sent(
        broker, topics, monkeypatch):
    [event] = sample_orders(1, seed=41, prefix="CXL", shape="mixed")
    order_id = event["order"]["order_id"]
    async with Vendors() as vendors:
        settings = settings_from(service_env(broker, topics, **vendors.urls()), monkeypatch)
        # The cancellation first, on partition 1; the order after, on partition 2.
        await send_to(broker.bootstrap_servers, topics.orders_created,
                      [(1, cancelled_event(order_id)), (2, event)])
        async with running_service(broker, topics, settings) as (_app, reader):
            pairs = {(order_id, vendor) for vendor in ("zakeke", "smake", "reevoo")}
            assert await reader.wait_for(pairs, timeout_s=30)
        for simulator in (vendors.zakeke, vendors.smake, vendors.reevoo):
            assert simulator.ledger.total_created == 0, simulator.vendor
    outcomes = reader.outcomes
    assert {outcomes.terminal_status[p] for p in pairs} == {"cancelled"}
    assert {outcomes.reasons[p] for p in pairs} == {"customer asked to cancel"}
    assert all(outcomes.statuses[p] == ["cancelled"] for p in pairs)  # never submitted
    assert await read_topic(broker.bootstrap_servers, topics.dead_letter) == []


def designed_apart(event: dict[str, Any]) -> dict[str, Any]:
    """The order's design line printed elsewhere: Smake makes its other line at once."""
    for line in event["order"]["lines"]:
        if (line.get("customization") or {}).get("design_id"):
            line["fulfilment"] = None
    return event


async def test_orderflow_cancel_stops_smake_in_production_and_says_what_could_not_be(
        broker, topics, monkeypatch):
    """Smake is producing: cancelled there. Zakeke's files are pending: it stops being
    followed (it keeps the order). Reevoo took it already: refused, with the reason."""
    [event] = sample_orders(1, seed=42, prefix="CXL", shape="mixed")
    event = designed_apart(event)
    order_id = event["order"]["order_id"]
    async with Vendors(seconds_per_state=5.0) as vendors:
        settings = settings_from(service_env(broker, topics, **vendors.urls())
                                 | {"ORDERFLOW_REEVOO__SUBMIT_ON": "placed"}, monkeypatch)
        async with running_service(broker, topics, settings) as (_app, reader):
            await send_to(broker.bootstrap_servers, topics.orders_created, [(0, event)])
            await until(lambda: (order_id, "reevoo") in reader.outcomes.terminal_status
                        and (order_id, "smake") in reader.outcomes.statuses,
                        "Reevoo's 202 and Smake's order", reader)
            report = Report("cancel")
            await cancel_command.cancel(settings, order_id, "customer asked to cancel", report,
                                        wait_s=20.0)
            pairs = {(order_id, vendor) for vendor in ("zakeke", "smake", "reevoo")}
            assert await reader.wait_for(pairs, timeout_s=30)
            await until(lambda: (order_id, "reevoo") in reader.outcomes.refusals,
                        "Reevoo's refusal", reader)
        [smake_order] = vendors.smake.orders_with_external_identifier(order_id)
        assert vendors.smake.state_of(smake_order.id) == "cancelled"
    outcomes = reader.outcomes
    assert outcomes.terminal_status[(order_id, "smake")] == "cancelled"
    assert outcomes.terminal_status[(order_id, "zakeke")] == "cancelled"
    assert "stays registered at Zakeke" in (outcomes.reasons[(order_id, "zakeke")] or "")
    assert outcomes.terminal_status[(order_id, "reevoo")] == "completed"
    assert list(outcomes.refusals[(order_id, "reevoo")].values()) == [
        "Reevoo already took the order (202), and has no way to withdraw one"]
    assert outcomes.pairs_with_several_terminals() == set()
    assert (order_id, "L1") not in outcomes.print_files
    said = {item["vendor"]: item["outcome"] for item in report.data["pairs"]}
    assert said == {"zakeke": "cancelled", "smake": "cancelled", "reevoo": "refused"}


async def test_a_cancel_smake_refuses_is_said_once_and_the_order_followed_to_its_end(
        broker, topics, monkeypatch):
    [event] = sample_orders(1, seed=43, prefix="CXL", shape="smake")
    order_id = event["order"]["order_id"]
    async with Vendors(seconds_per_state=0.5, cancellable=()) as vendors:
        settings = settings_from(service_env(broker, topics, **vendors.urls()), monkeypatch)
        async with running_service(broker, topics, settings) as (_app, reader):
            await send_to(broker.bootstrap_servers, topics.orders_created, [(0, event)])
            await until(lambda: "in_progress" in reader.outcomes.statuses.get(
                (order_id, "smake"), []), "Smake producing", reader)
            await send_to(broker.bootstrap_servers, topics.orders_created,
                          [(3, cancelled_event(order_id))])
            assert await reader.wait_for({(order_id, "smake"), (order_id, "reevoo")}, 30)
            await until(lambda: (order_id, "smake") in reader.outcomes.refusals,
                        "Smake's refusal", reader)
    outcomes = reader.outcomes
    assert outcomes.terminal_status[(order_id, "smake")] == "completed"
    [why] = outcomes.refusals[(order_id, "smake")].values()
    assert "can no longer be cancelled" in why
    # Reevoo waited for the delivery and never came: the order was cancelled meanwhile.
    assert outcomes.terminal_status[(order_id, "reevoo")] in ("cancelled", "completed")


async def test_an_order_created_again_on_another_partition_is_not_created_again(
        broker, topics, monkeypatch):
    """Another partitioner, or a republish long after: Smake and Zakeke are asked before a
    create, so neither gets a second order."""
    [event] = sample_orders(1, seed=44, prefix="TWICE", shape="mixed")
    order_id = event["order"]["order_id"]
    async with Vendors(seconds_per_state=0.1) as vendors:
        vendors.zakeke.print_files_delay_s = 0.2
        settings = settings_from(service_env(broker, topics, **vendors.urls())
                                 | {"ORDERFLOW_REEVOO__SUBMIT_ON": "placed"}, monkeypatch)
        async with running_service(broker, topics, settings) as (_app, reader):
            await send_to(broker.bootstrap_servers, topics.orders_created, [(0, event)])
            assert await reader.wait_for({(order_id, "smake"), (order_id, "zakeke")}, 30)
            await send_to(broker.bootstrap_servers, topics.orders_created, [(3, event)])
            await asyncio.sleep(5)
            await reader.poll()
        assert vendors.smake.ledger.created_count(order_id) == 1
        assert vendors.zakeke.ledger.created_count(order_id) == 1
    assert reader.outcomes.pairs_with_several_terminals() == set()
