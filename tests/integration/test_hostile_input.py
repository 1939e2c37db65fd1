"""A hostile upstream, from outside: a producer that is not orderflow's (confluent-kafka)
writes 300 good orders with every hostile kind mixed in to a running `orderflow run` (a
process of its own, default size limits), against the vendor simulators over real HTTP.

What an operator checks: every good order's pairs reach a terminal status; each hostile
record is dead-lettered exactly once and no good one is; /healthz answers 200 throughout;
the replica is still running at the end and logged no critical line."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import service_env, settings_from

from fuzz.records import HOSTILE, Limits
from orderflow.config.settings import KafkaSettings
from orderflow.contracts import dead_letters
from orderflow.sandbox.broker import free_port
from orderflow.sandbox.outcomes import OutputReader, expected_pairs, read_topic
from orderflow.sandbox.processes import start_service, wait_ready
from orderflow.sandbox.samples import encode, sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD_ORDERS = 300
DEFAULTS = KafkaSettings()  # the service runs with its default size limits
LIMITS = Limits(DEFAULTS.max_record_bytes, DEFAULTS.max_message_bytes)


def hostile_records(rng: random.Random) -> list[tuple[str, bytes | None, bytes | None]]:
    """One record of every hostile kind the fuzzer knows, plus a 1.2 MB record."""
    base = sample_orders(1, seed=99, prefix="HOSTILE", shape="mixed")[0]
    records: list[tuple[str, bytes | None, bytes | None]] = []
    for n, (kind, build) in enumerate(HOSTILE.items()):
        event = json.loads(json.dumps(base))
        event["order"]["order_id"] = f"HOSTILE-{n}"
        records.append((kind, f"HOSTILE-{n}".encode(), build(rng, event, LIMITS)))
    records.append(("record_of_1.2_MB", b"HOSTILE-big", b'{"pad": "' + b"x" * 1_200_000 + b'"}'))
    return records


async def probe_health(port: int, stop: asyncio.Event, seen: Counter[int]) -> None:
    """Every 0.25 s from the first answer on (before it, the process is still importing);
    a refused connection after that counts as 0."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                    seen[answer.status] += 1
            except (aiohttp.ClientError, OSError):
                if seen:
                    seen[0] += 1
            await asyncio.sleep(0.25)


async def allow_large_records(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"max.message.bytes": str(4 << 20)})])
    finally:
        await admin.close()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]
            ) -> list[tuple[int, int]]:
    from confluent_kafka import Producer

    placed: list[tuple[int, int]] = [(-1, -1)] * len(records)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "message.max.bytes": 4 * 1024 * 1024, "linger.ms": 5})
    for index, (key, value) in enumerate(records):
        def delivered(error: Any, message: Any, index: int = index) -> None:
            assert error is None, error
            placed[index] = (message.partition(), message.offset())
        producer.produce(topic, value, key=key, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    return placed


async def test_good_orders_complete_and_each_hostile_record_is_dead_lettered_once(
        broker, topics, monkeypatch, tmp_path: Path) -> None:
    rng = random.Random(5)
    good = sample_orders(GOOD_ORDERS, seed=5, prefix="GOOD")
    hostile = hostile_records(rng)
    stream: list[tuple[str, bytes | None, bytes | None]] = [("good", *encode(e)) for e in good]
    for kind, key, value in hostile:  # spread through the good ones
        stream.insert(rng.randrange(len(stream) + 1), (kind, key, value))

    async with SimulatorServer(ZakekeSimulator(print_files_delay_s=0.2,
                                               **world.zakeke_options())) as zakeke, \
            SimulatorServer(SmakeSimulator(seconds_per_state=0.1, **world.smake_options())) as smake, \
            SimulatorServer(ReevooSimulator()) as reevoo:
        env = service_env(broker, topics, zakeke=zakeke.base_url, smake=smake.base_url,
                          reevoo=reevoo.base_url)
        settings = settings_from(env, monkeypatch)
        expected = expected_pairs(good, settings)
        port = free_port()
        env["ORDERFLOW_HTTP__PORT"] = str(port)
        for name in ("ORDERFLOW_KAFKA__MAX_RECORD_BYTES", "ORDERFLOW_KAFKA__MAX_MESSAGE_BYTES"):
            env.pop(name, None)
        # The platform lets the input topic take records up to 4 MiB (Kafka's default is 1 MiB),
        # so that a 1.2 MB record reaches orderflow's own limit.
        if broker.abilities.configs:  # the embedded broker takes any size, and no AlterConfigs
            await allow_large_records(broker.bootstrap_servers, topics.orders_created)
        log_path = tmp_path / "service.log"
        with log_path.open("wb") as log:
            service = start_service(env, log)
        reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
        await reader.start()
        stop, seen = asyncio.Event(), Counter[int]()
        prober = asyncio.create_task(probe_health(port, stop, seen))
        try:
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, port, service)
            placed = await asyncio.to_thread(
                produce, broker.bootstrap_servers, topics.orders_created,
                [(key, value) for _, key, value in stream])
            finished = await reader.wait_for(expected, timeout_s=150)
            await asyncio.sleep(2)  # let any second dead letter show, were there one
            still_running = service.running
        finally:
            stop.set()
            await prober
            await reader.stop()
            service.stop()
    log_text = log_path.read_text(errors="replace")

    assert finished, f"{len(expected - reader.outcomes.finished_pairs())} good pairs never ended"
    assert reader.outcomes.pairs_with_several_terminals() == set()
    assert still_running, log_text[-3000:]
    assert set(seen) == {200}, f"/healthz answers: {dict(seen)}"
    assert service.popen.returncode == 0, log_text[-3000:]
    assert '"level": "critical"' not in log_text

    by_offset = {where: stream[index][0] for index, where in enumerate(placed)}
    lettered: Counter[tuple[int, int]] = Counter()
    for letter in await read_topic(broker.bootstrap_servers, topics.dead_letter):
        headers = {name: value.decode() for name, value in letter.headers}
        lettered[(int(headers[dead_letters.ORIGINAL_PARTITION]),
                  int(headers[dead_letters.ORIGINAL_OFFSET]))] += 1
    kinds = {by_offset[where]: times for where, times in lettered.items()}
    assert "good" not in kinds, "a good order was dead-lettered"
    assert sorted(kinds) == sorted(kind for kind, _, _ in hostile), "each hostile kind dead-lettered"
    assert set(lettered.values()) == {1}, f"dead-lettered more than once: {lettered.most_common(3)}"
    print(f"\nhostile input: {len(good)} good orders, {len(expected)} pairs all terminal; "
          f"{len(hostile)} hostile records, {len(lettered)} dead letters, each once; "
          f"/healthz {dict(seen)}")
