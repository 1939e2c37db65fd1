"""Restore after compaction, on a broker that compacts (the strict lane; on the embedded one
nothing is compacted and the test shows only the restore).

A replica follows orders to their end and leaves others waiting at Smake, with the
idempotent producer on where the broker has it; its tracking and control topics are set to
compact as eagerly as Kafka allows, and are compacted (old versions, tombstones and offsets
gone, gaps left). A second replica then restores from what compaction left: the waiting
pairs complete without a second create at Smake, the finished ones are known (the same
orders sent again create nothing), and the vendor resumed before is not held."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from conftest import PARTITIONS, produce, service_env, settings_from
from test_operator_commands import orderflow

from orderflow.consumer.app import Application
from orderflow.contracts.events import Vendor
from orderflow.sandbox.broker import create_topics
from orderflow.sandbox.outcomes import OutputReader, read_topic
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

pytestmark = [pytest.mark.integration, pytest.mark.kafka_semantics, pytest.mark.slow]

EAGER = {"cleanup.policy": "compact", "segment.ms": "100", "min.compaction.lag.ms": "0",
         "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"}


async def offsets_written(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_a_replica_restores_what_compaction_left(broker, topics, monkeypatch) -> None:
    bootstrap = broker.bootstrap_servers
    await create_topics(bootstrap, [(topics.tracking, PARTITIONS, EAGER), (topics.control, 1, EAGER)])
    smake = SimulatorServer(SmakeSimulator(seconds_per_state=0.2, **world.smake_options()))
    finished = sample_orders(20, seed=21, prefix="CFIN", shape="smake")
    waiting = sample_orders(10, seed=22, prefix="CWAIT", shape="smake")
    async with smake:
        env = service_env(broker, topics, smake=smake.base_url)
        settings = settings_from(env, monkeypatch)
        reader = OutputReader(bootstrap, topics.status, topics.print_files_ready)
        await reader.start()
        app = Application(settings)
        await app.start()
        try:
            code, _, err = await orderflow(env, "pause", "smake", "--note", "before compaction")
            assert code == 0, err
            code, _, err = await orderflow(env, "resume", "smake")
            assert code == 0, err
            await produce(bootstrap, topics.orders_created, finished)
            assert await reader.wait_for({(e["order"]["order_id"], "smake") for e in finished}, 60)
            # The waiting ones: created at Smake, then slow enough to outlast the restart.
            smake.state.seconds_per_state = 6
            await produce(bootstrap, topics.orders_created, waiting)
            deadline = time.monotonic() + 60
            while len(smake.state.orders) < len(finished) + len(waiting):
                assert time.monotonic() < deadline, "the waiting orders were not created"
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # their `submitted` recorded
        finally:
            await app.stop()

        # Compacted: fewer records than offsets written, with gaps between them.
        written = await offsets_written(bootstrap, topics.tracking, PARTITIONS)
        kept = await read_topic(bootstrap, topics.tracking)
        deadline = time.monotonic() + (60 if broker.abilities.compaction else 0)
        while len(kept) >= written and time.monotonic() < deadline:
            await asyncio.sleep(1)
            kept = await read_topic(bootstrap, topics.tracking)
        if broker.abilities.compaction:
            assert len(kept) < written, "the broker compacted nothing"
        print(f"\ntracking topic: {written} records written, {len(kept)} left by compaction "
              f"({broker.abilities.name})")

        app = Application(settings_from(env, monkeypatch))
        await app.start()
        try:
            assert not app.scheduler.is_paused(Vendor.SMAKE)
            await produce(bootstrap, topics.orders_created, finished)  # again: nothing new
            assert await reader.wait_for({(e["order"]["order_id"], "smake") for e in waiting}, 90)
            await asyncio.sleep(2)
        finally:
            await reader.stop()
            await app.stop()
    ledger = smake.state.ledger
    assert ledger.total_created == len(finished) + len(waiting)
    assert ledger.duplicates() == {}
    assert reader.outcomes.pairs_with_several_terminals() == set()
