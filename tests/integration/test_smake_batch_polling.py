"""Due Smake polls are read together (`GET /orders?filter[id]=...`, up to 100 ids), and every
pair still moves on its own state: what Smake sees grows with the batches, not the pairs."""

from __future__ import annotations

import pytest
from conftest import produce, running_service, service_env, settings_from

from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

pytestmark = [pytest.mark.integration]


async def run(broker, topics, monkeypatch, batch_size: int,
              prefix: str) -> tuple[SmakeSimulator, OutputReader, set[tuple[str, str]]]:
    simulator = SmakeSimulator(seconds_per_state=1.5, failure_rate=0.2, seed=21,
                               **world.smake_options())
    async with SimulatorServer(simulator) as smake:
        env = service_env(broker, topics, smake=smake.base_url) | {
            "ORDERFLOW_SMAKE__POLL_BATCH_SIZE": str(batch_size)}
        async with running_service(broker, topics, settings_from(env, monkeypatch)) as (_app, reader):
            events = sample_orders(60, seed=22, prefix=prefix, shape="smake")
            pairs = {(e["order"]["order_id"], "smake") for e in events}
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            assert await reader.wait_for(pairs, timeout_s=90)
    return simulator, reader, pairs


async def test_polls_are_read_in_batches_and_each_pair_follows_its_own_state(broker, topics, monkeypatch):
    simulator, reader, pairs = await run(broker, topics, monkeypatch, 100, "BATCH")
    outcomes = reader.outcomes
    assert {outcomes.terminal_status[p] for p in pairs} <= {"completed", "failed"}
    assert "failed" in {outcomes.terminal_status[p] for p in pairs}
    for pair in pairs:
        seen = outcomes.statuses[pair]
        assert seen[0] == "submitted", seen
        if outcomes.terminal_status[pair] == "completed":
            assert seen[-1] == "completed" and "in_progress" in seen
    assert outcomes.pairs_with_several_terminals() == set()
    assert outcomes.repeated_events() == 0
    assert simulator.ledger.duplicates() == {}
    single_reads = simulator.ledger.request_count("get_order")
    listings = simulator.ledger.request_count("list_orders")
    # 60 pairs polled about once a second for ~8 s each: ~480 reads one by one.
    assert single_reads + listings < 150, (single_reads, listings)


async def test_batch_size_one_reads_each_order_on_its_own(broker, topics, monkeypatch):
    simulator, _, pairs = await run(broker, topics, monkeypatch, 1, "SINGLE")
    assert simulator.ledger.request_count("get_order") > 2 * len(pairs)
