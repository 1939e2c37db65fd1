"""Generated records through the real intake: decode, validate, route, and the writes to a
Kafka-protocol broker (the embedded one), then a count of what became of each record.

The service runs in this process as `orderflow run` would build it, with every vendor
enabled (so valid orders become tracking records) but no vendor adapter (so no vendor is
called: this is about intake). A producer that is not orderflow's (confluent-kafka) writes
the records; afterwards the dead-letter topic is read whole and every input offset is
accounted for.

Fails on:
- a crash: the service's critical task died, or /healthz said it was stuck;
- a stall: committed offsets stopped moving short of the end for `stall_after_s`;
- a record dead-lettered more than once, or a dead letter naming no input record;
- a record built to be valid that was dead-lettered, or a hostile one that was not;
- a count that does not add up (inputs = accepted + dead-lettered).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from fuzz.records import FuzzRecord, Limits, generate
from orderflow.config.settings import (
    HttpSettings,
    KafkaSettings,
    LogSettings,
    ReevooSettings,
    Settings,
    SmakeSettings,
    TopicSettings,
    ZakekeSettings,
)
from orderflow.consumer.app import Application
from orderflow.contracts import dead_letters
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, prefixed_topics
from orderflow.sandbox.outcomes import read_topic

PARTITIONS = 4
# Small limits keep the run quick and put "just under" and "just over" within reach. The
# input limit equals the brokers', above the brokers' less the tracking headroom on purpose,
# so that valid orders whose tracking records would not fit exist (too_large).
LIMITS = Limits(max_record_bytes=96 * 1024, max_message_bytes=96 * 1024)

Say = Callable[[str], None]


@dataclass
class IntakeFuzzReport:
    inputs: int = 0
    accepted: int = 0
    dead_lettered: int = 0
    crashes: list[str] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    values_omitted: int = 0

    @property
    def passed(self) -> bool:
        return not (self.crashes or self.stalls or self.violations)

    def render(self) -> str:
        lines = [
            f"records fuzz: {self.inputs} inputs, {self.accepted} accepted, "
            f"{self.dead_lettered} dead-lettered ({self.values_omitted} without their value), "
            f"{len(self.crashes)} crashes, {len(self.stalls)} stalls, {self.seconds:.1f} s",
            "  dead letters by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(self.by_reason.items())),
            "  by kind (accepted/dead-lettered):",
        ]
        for kind in sorted(self.by_kind):
            counts = self.by_kind[kind]
            lines.append(f"    {kind:<28} {counts['accepted']:>6} / {counts['dead_lettered']:<6}")
        lines.extend(problem_lines(self.crashes, self.stalls, self.violations))
        return "\n".join(lines)


def problem_lines(crashes: list[str], stalls: list[str], violations: list[str]) -> list[str]:
    """A fuzz report's crashes, stalls and violations, the first 20 of each."""
    lines: list[str] = []
    for title, items in (("CRASH", crashes), ("STALL", stalls), ("VIOLATION", violations)):
        lines.extend(f"  {title}: {item}" for item in items[:20])
        if len(items) > 20:
            lines.append(f"  ... and {len(items) - 20} more")
    return lines


def fuzz_settings(bootstrap: str, topics: TopicSettings) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, group_id=f"fuzz-{topics.orders_created}",
                            enable_idempotence=False, session_timeout_ms=6_000,
                            heartbeat_interval_ms=1_000, tracking_replication_factor=1,
                            max_record_bytes=LIMITS.max_record_bytes,
                            max_message_bytes=LIMITS.max_message_bytes),
        topics=topics,
        zakeke=ZakekeSettings(client_id="fuzz", client_secret=SecretStr("fuzz")),
        smake=SmakeSettings(api_key=SecretStr("fuzz")),
        reevoo=ReevooSettings(api_key=SecretStr("fuzz"), api_secret=SecretStr("fuzz"), trkref="FUZZ"),
        http=HttpSettings(host="127.0.0.1", port=0),
        log=LogSettings(level="CRITICAL"),
        shutdown_grace_s=5,
    )


def produce(bootstrap: str, topic: str, records: list[FuzzRecord], *,
            partition: int | None = None) -> dict[tuple[int, int], int]:
    """Write the records as an outside producer would (to `partition`, if given, else by
    key); (partition, offset) -> record index."""
    from confluent_kafka import Producer

    placed: dict[tuple[int, int], int] = {}
    failures: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                         "enable.idempotence": False, "message.max.bytes": 4 * 1024 * 1024,
                         "queue.buffering.max.messages": 200_000})
    for index, record in enumerate(records):
        def delivered(error: Any, message: Any, index: int = index) -> None:
            if error is not None:
                failures.append(str(error))
            else:
                placed[(message.partition(), message.offset())] = index
        while True:
            try:
                if partition is None:
                    producer.produce(topic, record.value, key=record.key, on_delivery=delivered)
                else:
                    producer.produce(topic, record.value, key=record.key, partition=partition,
                                     on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.2)
        producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"the fuzz producer could not write every record: {failures[:3]}")
    return placed


async def committed_offsets(bootstrap: str, group: str, tps: list[TopicPartition]) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp.partition: (await consumer.committed(tp)) or 0 for tp in tps}
    finally:
        await consumer.stop()


async def run_intake_fuzz(count: int, seed: int = 1, *, stall_after_s: float = 60.0,
                          say: Say = print, broker: SandboxBroker | None = None) -> IntakeFuzzReport:
    report = IntakeFuzzReport()
    started = time.monotonic()
    say(f"generating {count} records (seed {seed}) ...")
    records = list(generate(count, seed, LIMITS))
    report.inputs = len(records)
    own_broker = broker is None
    running = broker if broker is not None else chosen_broker().start()
    try:
        await _run(running.bootstrap_servers, records, seed, stall_after_s, say, report)
    finally:
        if own_broker:
            running.stop()
    report.seconds = time.monotonic() - started
    return report


async def _run(bootstrap: str, records: list[FuzzRecord], seed: int, stall_after_s: float,
               say: Say, report: IntakeFuzzReport) -> None:
    prefix = f"fuzz{seed}-{int(time.time() * 1000) % 10**8}"
    topics = prefixed_topics(prefix)
    await create_topics(bootstrap, [(topics.orders_created, PARTITIONS, None),
                                    (topics.status, PARTITIONS, None),
                                    (topics.print_files_ready, PARTITIONS, None),
                                    (topics.dead_letter, PARTITIONS, None)])
    say(f"producing {len(records)} records to {topics.orders_created} ...")
    placed = await asyncio.to_thread(produce, bootstrap, topics.orders_created, records)
    settings = fuzz_settings(bootstrap, topics)
    app = Application(settings, adapters={})
    tps = [TopicPartition(topics.orders_created, p) for p in range(PARTITIONS)]
    ends: dict[int, int] = Counter()
    for partition, offset in placed:
        ends[partition] = max(ends[partition], offset + 1)
    say("running the intake ...")
    await app.start()
    try:
        last_progress, last_total = time.monotonic(), -1
        while True:
            if app.critical.failure is not None:
                report.crashes.append(app.critical.failure)
                break
            healthy, detail = app.health()
            if not healthy:
                report.crashes.append(f"/healthz would answer 503: {detail}")
                break
            done = await committed_offsets(bootstrap, settings.kafka.group_id, tps)
            total = sum(done.values())
            if all(done.get(p, 0) >= ends.get(p, 0) for p in range(PARTITIONS)):
                break
            if total != last_total:
                last_progress, last_total = time.monotonic(), total
            elif time.monotonic() - last_progress > stall_after_s:
                report.stalls.append(f"committed offsets {done} stopped short of {dict(ends)} "
                                     f"for {stall_after_s:.0f} s")
                break
            await asyncio.sleep(0.5)
    finally:
        await app.stop()
    _account(records, placed, await read_topic(bootstrap, topics.dead_letter), topics, app, report)


def _account(records: list[FuzzRecord], placed: dict[tuple[int, int], int], letters: list[Any],
             topics: TopicSettings, app: Application, report: IntakeFuzzReport) -> None:
    lettered: Counter[int] = Counter()
    for letter in letters:
        headers = {name: value.decode("utf-8", "replace") for name, value in letter.headers}
        missing = set(dead_letters.REQUIRED) - set(headers)
        if missing:
            report.violations.append(f"dead letter without headers {sorted(missing)}")
        try:
            where = (int(headers[dead_letters.ORIGINAL_PARTITION]),
                     int(headers[dead_letters.ORIGINAL_OFFSET]))
        except (KeyError, ValueError):
            report.violations.append(f"dead letter naming no input record: {headers}")
            continue
        if where not in placed or headers.get(dead_letters.ORIGINAL_TOPIC) != topics.orders_created:
            report.violations.append(f"dead letter naming no input record: {where}")
            continue
        index = placed[where]
        lettered[index] += 1
        report.by_reason[headers.get(dead_letters.ERROR_REASON, "?")] += 1
        if dead_letters.VALUE_OMITTED in headers:
            report.values_omitted += 1
            if letter.value not in (b"", None) or int(headers[dead_letters.VALUE_OMITTED]) != len(
                    records[index].value or b""):
                report.violations.append(f"record {where}: omitted value misreported")
        elif (letter.value or b"") != (records[index].value or b""):
            report.violations.append(f"record {where}: dead letter does not hold the original bytes")
    for index, times in lettered.items():
        if times > 1:
            report.violations.append(f"record {index} ({records[index].kind}) dead-lettered {times} times")
    for index, record in enumerate(records):
        outcome = "dead_lettered" if lettered[index] else "accepted"
        report.by_kind.setdefault(record.kind, Counter())[outcome] += 1
        if record.expect == "accept" and lettered[index]:
            report.violations.append(f"valid record {index} ({record.kind}) was dead-lettered")
        if record.expect == "dead_letter" and not lettered[index]:
            report.violations.append(f"hostile record {index} ({record.kind}) was accepted")
    report.dead_lettered = len(lettered)
    report.accepted = report.inputs - report.dead_lettered
    consumed = {sample.labels.get("result"): sample.value
                for metric in app.metrics.events_consumed.collect() for sample in metric.samples
                if sample.name.endswith("_total")}
    counted = sum(consumed.values())
    if counted != report.inputs or consumed.get("invalid", 0) != report.dead_lettered:
        report.violations.append(f"counts do not add up: metrics {consumed} for {report.inputs} "
                                 f"inputs and {report.dead_lettered} dead letters")
