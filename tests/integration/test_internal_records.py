"""Hostile records on orderflow's own topics, from outside: before `orderflow run` starts (a
process of its own), the tracking topic holds one record of every hostile kind the fuzzer
knows (fuzz/internal.py) and the control topic hostile pause, hint, retry and marker
records, among them malformed `pause/smake` records. What an on-call engineer checks: the
replica is ready and stays up, every good order's pairs end, `pause`/`resume` work and
write over the bad record, `inspect` names the unreadable record instead of a traceback,
and the operator commands answer cleanly with no broker at all."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from conftest import PARTITIONS, produce, service_env
from test_operator_commands import json_of, orderflow

from fuzz.internal import TRACKING_HOSTILE, control_records
from orderflow.consumer.jobs import Job, Phase, tracking_key
from orderflow.consumer.tracking_record import encode_job
from orderflow.contracts.events import Vendor, VendorStatus
from orderflow.sandbox.broker import create_topics, free_port
from orderflow.sandbox.outcomes import OutputReader, expected_pairs
from orderflow.sandbox.processes import start_service, wait_ready
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def hostile_tracking() -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value): one record of each hostile kind, each its own pair."""
    rng = random.Random(3)
    records = []
    for n, (_kind, build) in enumerate(sorted(TRACKING_HOSTILE.items())):
        job = Job(order_id=f"BAD-{n}", vendor=Vendor.SMAKE, partition=n % PARTITIONS,
                  source_event_id="e", phase=Phase.POLL, status=VendorStatus.SUBMITTED,
                  vendor_order_ref=str(n), created_at=1.0, due_at=1.0)
        records.append((n % PARTITIONS, tracking_key(job.key),
                        build(rng, json.loads(encode_job(job)))))
    return records


async def write(bootstrap: str, topic: str,
                records: Sequence[tuple[int | None, bytes | None, bytes | None]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 << 20)
    await producer.start()
    try:
        for partition, key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


async def paused_gauge(port: int) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as answer:
        for line in (await answer.text()).splitlines():
            if line.startswith('orderflow_vendor_paused{reason="operator",vendor="smake"}'):
                return float(line.split()[-1])
    return -1.0


async def test_hostile_internal_records_neither_stop_a_replica_nor_the_commands(
        broker, topics, tmp_path: Path) -> None:
    bootstrap = broker.bootstrap_servers
    await create_topics(bootstrap, [(topics.tracking, PARTITIONS, {"cleanup.policy": "compact"}),
                                    (topics.control, 1, {"cleanup.policy": "compact"})])
    hostile = hostile_tracking()
    await write(bootstrap, topics.tracking, list(hostile))
    controls = [record for record in control_records(300, random.Random(4))
                if record.kind != "good_control" or not record.key or not record.key.startswith(b"pause/")]
    if broker.abilities.compaction:
        # A compacting broker refuses a record without a key on a compacted topic, as Kafka does.
        controls = [record for record in controls if record.key is not None]
    await write(bootstrap, topics.control, [(0, r.key, r.value) for r in controls]
                + [(0, b"pause/smake", b'{"kind":"pause","at":1e999,"vendor":"smake","paused":true}')])

    good = sample_orders(30, seed=8, prefix="GOODINT")
    zakeke_simulator = ZakekeSimulator(print_files_delay_s=0.2, **world.zakeke_options())
    async with SimulatorServer(zakeke_simulator) as zakeke, \
            SimulatorServer(SmakeSimulator(seconds_per_state=0.1, **world.smake_options())) as smake, \
            SimulatorServer(ReevooSimulator()) as reevoo:
        env = service_env(broker, topics, zakeke=zakeke.base_url, smake=smake.base_url,
                          reevoo=reevoo.base_url)
        port = free_port()
        env["ORDERFLOW_HTTP__PORT"] = str(port)
        log_path = tmp_path / "service.log"
        with log_path.open("wb") as log:
            service = start_service(env, log)
        reader = OutputReader(bootstrap, topics.status, topics.print_files_ready)
        await reader.start()
        try:
            async with aiohttp.ClientSession() as http:
                await wait_ready(http, port, service)
            from orderflow.config.settings import load_settings
            from orderflow.config.settings import overrides_from as nested

            settings = load_settings({}, **nested(env))
            await produce(bootstrap, topics.orders_created, good)
            finished = await reader.wait_for(expected_pairs(good, settings), timeout_s=120)

            code, paused = await json_of(env, "pause", "smake", "--note", "hostile test")
            await asyncio.sleep(3)
            held = await paused_gauge(port)
            resume_code, resumed = await json_of(env, "resume", "smake")
            await asyncio.sleep(3)
            released = await paused_gauge(port)

            bad_partition, bad_key, _ = hostile[0]
            inspect_code, inspected = await json_of(env, "inspect", bad_key.decode().split("/", 1)[1])
            plain_code, plain, plain_err = await orderflow(env, "inspect",
                                                           bad_key.decode().split("/", 1)[1])
            still_running = service.running
        finally:
            await reader.stop()
            service.stop()
    log_text = log_path.read_text(errors="replace")

    assert finished, "good pairs never ended"
    assert still_running and service.popen.returncode == 0, log_text[-3000:]
    assert "Traceback" not in log_text
    assert log_text.count('"tracking record unreadable, skipped"') >= len(TRACKING_HOSTILE)
    assert '"unreadable control record skipped"' in log_text
    assert code == 0 and paused["was_paused"] is False and "replaced" in paused, paused
    assert held == 1.0, "the replica did not hold Smake after `orderflow pause`"
    assert resume_code == 0 and resumed["paused"] is False and released == 0.0
    assert inspect_code == 0
    [pair] = inspected["pairs"]
    assert pair["unreadable"].startswith(f"unreadable record at {bad_partition}:"), pair
    assert plain_code == 0 and "unreadable record at" in plain and "Traceback" not in plain_err


async def test_operator_commands_answer_cleanly_without_a_broker(broker, topics) -> None:
    env = service_env(broker, topics) | {"ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    for args in (["inspect", "A-1"], ["retry", "A-1", "--wait", "1"], ["pause", "smake"],
                 ["resume", "smake"], ["dlq", "list"], ["dlq", "show", "3"], ["dlq", "replay"],
                 ["check"]):
        code, out, err = await orderflow(env, *args)
        assert code == 1, (args, code, out, err)
        assert "Traceback" not in err and "Unclosed" not in err, (args, err)
        assert "127.0.0.1:9" in out + err and "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS" in out + err, args
        code, document = await json_of(env, *args)
        assert code == 1 and document["exit_code"] == 1, (args, document)
    code, out, err = await orderflow(env, "retry", "A-1", "--wait", "nan")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
