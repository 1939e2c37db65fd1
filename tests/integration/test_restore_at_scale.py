"""`orderflow run` restoring a tracking topic of 100,000 records: /healthz answers 200 all
the while (and is answered while /readyz still says it is restoring), /readyz turns 200, every
record is read, and the jobs restored unfinished are run.

The service runs as its own process against the embedded broker; the tracking topic is created
as the service would create it and filled with records made by `encode_job`. Nothing here
asserts a timing (`make bench-restore` measures them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from conftest import PARTITIONS, service_env

from orderflow.config.settings import TopicSettings
from orderflow.consumer.jobs import Job, Phase, tracking_key
from orderflow.consumer.tracking_record import encode_job
from orderflow.contracts.events import Order, Vendor, VendorStatus
from orderflow.sandbox.broker import EmbeddedBroker, create_topics, free_port
from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 100_000
ACTIVE = 20            # unfinished Reevoo pairs, run once restored
SUPERSEDED = 5_000     # an unfinished version (with its order), later finished
FORGOTTEN = 1_500      # finished, then tombstoned
FINISHED = RECORDS - ACTIVE - 2 * SUPERSEDED - 2 * FORGOTTEN  # finished from their first record


def tracking_history(active_orders: list[Order], now: float) -> Iterator[tuple[int, bytes, bytes | None]]:
    """(partition, key, value) of RECORDS tracking records, in topic order."""
    template = active_orders[0]

    def pair(index: int, phase: Phase, *, order: Order | None = None) -> Job:
        order_id = f"HIST-{index:06d}"
        job = Job(order_id=order_id, vendor=Vendor.SMAKE if index % 2 else Vendor.REEVOO,
                  partition=index % PARTITIONS, source_event_id=f"{index:032x}", order=order,
                  phase=phase, created_at=now - 3_600, due_at=now + 600)
        if phase is Phase.DONE:
            job = replace(job, status=VendorStatus.COMPLETED, vendor_order_ref=str(index),
                          finished_at=now - 60)
        return job

    def written(job: Job, tombstone: bool = False) -> tuple[int, bytes, bytes | None]:
        return job.partition, tracking_key(job.key), None if tombstone else encode_job(job)

    index = 0
    for _ in range(FINISHED):
        yield written(pair(index, Phase.DONE))
        index += 1
    for _ in range(SUPERSEDED):
        order = template.model_copy(update={"order_id": f"HIST-{index:06d}"})
        yield written(pair(index, Phase.SUBMIT, order=order))
        yield written(pair(index, Phase.DONE))
        index += 1
    for _ in range(FORGOTTEN):
        yield written(pair(index, Phase.DONE))
        yield written(pair(index, Phase.DONE), tombstone=True)
        index += 1
    for n, order in enumerate(active_orders):
        yield n % PARTITIONS, tracking_key((order.order_id, Vendor.REEVOO)), encode_job(Job(
            order_id=order.order_id, vendor=Vendor.REEVOO, partition=n % PARTITIONS,
            source_event_id=f"active-{n}", order=order, created_at=now, due_at=now))


async def fill_tracking(broker: EmbeddedBroker, topics: TopicSettings, active_orders: list[Order]) -> int:
    # As the service itself creates it (orderflow.consumer.kafka.prepare_topics).
    await create_topics(broker.bootstrap_servers, [
        (topics.tracking, PARTITIONS, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"})])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all",
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    sent = 0
    try:
        batches = {p: producer.create_batch() for p in range(PARTITIONS)}
        futures = []
        for partition, key, value in tracking_history(active_orders, time.time()):
            if batches[partition].append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batches[partition], topics.tracking,
                                                         partition=partition))
                batches[partition] = producer.create_batch()
                assert batches[partition].append(key=key, value=value, timestamp=None) is not None
            sent += 1
        for partition, batch in batches.items():
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topics.tracking, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def start_service(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "orderflow", "run"],
                                env={**os.environ, **env}, stdout=log, stderr=log)


def restored_lines(log_path: Path) -> list[dict[str, object]]:
    found = []
    for line in log_path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "tracking restored":
                found.append(entry)
    return found


async def test_a_large_restore_keeps_health_answering_and_runs_the_restored_jobs(
        broker: EmbeddedBroker, topics: TopicSettings, tmp_path: Path) -> None:
    events = sample_orders(ACTIVE, seed=23, prefix="RESTORED")
    active_orders = [Order.model_validate(event["order"]) for event in events]
    assert await fill_tracking(broker, topics, active_orders) == RECORDS

    async with SimulatorServer(ReevooSimulator()) as reevoo:
        port = free_port()
        env = {**service_env(broker, topics, reevoo=reevoo.base_url), "ORDERFLOW_HTTP__PORT": str(port)}
        reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
        await reader.start()
        log_path = tmp_path / "service.log"
        service = start_service(env, log_path)
        # (/healthz status, /readyz status, /readyz text) every 100 ms, from the first answer on
        probes: list[tuple[int, int, str]] = []
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                base = f"http://127.0.0.1:{port}"
                for _ in range(1_200):
                    assert service.poll() is None, f"the service exited; see {log_path}"
                    try:
                        async with session.get(f"{base}/healthz") as health:
                            health_status = health.status
                        async with session.get(f"{base}/readyz") as ready:
                            probes.append((health_status, ready.status, await ready.text()))
                    except aiohttp.ClientConnectionError:
                        assert not probes, "the service stopped answering"
                    if probes and probes[-1][1] == 200:
                        break
                    await asyncio.sleep(0.1)
                async with session.get(f"{base}/metrics") as answer:
                    metrics = await answer.text()

            assert probes and probes[-1][1] == 200, "/readyz never turned 200"
            assert [p for p in probes if p[0] != 200] == [], "/healthz answered other than 200"
            assert any(ready == 503 and "restoring" in text for _, ready, text in probes), \
                "/healthz was never answered while the restore ran"
            assert f"orderflow_tracking_records_restored_total {float(RECORDS)}" in metrics

            pairs = {(order.order_id, "reevoo") for order in active_orders}
            assert await reader.wait_for(pairs, timeout_s=30), "the restored jobs did not all run"
        finally:
            if service.poll() is None:
                service.terminate()
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                service.kill()
            await reader.stop()

    restored = restored_lines(log_path)
    assert sorted(int(str(r["partition"])) for r in restored) == list(range(PARTITIONS))
    assert sum(int(str(r["records"])) for r in restored) == RECORDS
    assert sum(int(str(r["active"])) for r in restored) == ACTIVE
    assert sum(int(str(r["finished"])) for r in restored) == FINISHED + SUPERSEDED
    outcomes = reader.outcomes
    assert {outcomes.terminal_status[p] for p in pairs} == {"completed"}
    assert reevoo.state.ledger.total_created == ACTIVE, "only the unfinished pairs are sent again"
