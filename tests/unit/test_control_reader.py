"""The control reader without a broker: what it does with each record it is handed (skip
what it cannot read, learn noted deliveries, act on pauses), and the residue it sweeps as
the owner of partition 0 (stale hints, markers of expired dead letters)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from orderflow.config.settings import Settings
from orderflow.consumer.control import SWEEPER_PARTITION, ControlReader
from orderflow.consumer.jobs import JobTable
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.ports import EngineCommands, HintResult
from orderflow.contracts import control
from orderflow.contracts.events import Vendor

NOW = 1_800_000_000.0


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    timestamp: int
    partition: int = 0
    offset: int = 0


@dataclass
class FakeConsumer:
    """What the reader asks of its consumer: the next records, and where a topic begins."""

    batches: list[list[Record]] = field(default_factory=list)
    begins: dict[TopicPartition, int] = field(default_factory=dict)

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[TopicPartition, list[Record]]:
        return {TopicPartition("control", 0): self.batches.pop(0)} if self.batches else {}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.begins.get(tp, 0) for tp in tps}


@dataclass
class FakeProducer:
    sent: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)

    async def send(self, topic: str, value: bytes | None, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((topic, value, key))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class FakeOwner:
    def __init__(self, opened: list[int]) -> None:
        self.opened = opened
        self.table = JobTable()

    def open_partitions(self) -> list[int]:
        return self.opened


class FakeCommands:
    """The engine as the control reader commands it (`EngineCommands`)."""

    def __init__(self) -> None:
        self.paused: dict[Vendor, bool] = {}
        self.cancelled: list[control.Cancel] = []

    def follows(self, vendor: Vendor) -> bool:
        return True

    def pause(self, vendor: Vendor) -> bool:
        self.paused[vendor] = True
        return True

    def resume(self, vendor: Vendor) -> bool:
        self.paused[vendor] = False
        return True

    def look_now(self, vendor: Vendor, order_id: str | None, ref: str | None) -> HintResult:
        return HintResult.NOT_HERE

    async def cancel(self, cancel: control.Cancel) -> None:
        self.cancelled.append(cancel)


def reader(opened: list[int] | None = None) -> tuple[ControlReader, FakeCommands, FakeProducer]:
    commands = FakeCommands()
    owner = FakeOwner(opened if opened is not None else [SWEEPER_PARTITION])
    producer = FakeProducer()
    settings = Settings(topics={"control": "control", "dead_letter": "dlq"})
    built = ControlReader(settings, commands, owner, None, producer,  # type: ignore[arg-type]
                          Metrics(process_collectors=False), clock=lambda: NOW)
    return built, commands, producer


def _commands_fit_their_port(commands: FakeCommands) -> EngineCommands:
    return commands


def at(seconds_ago: float) -> int:
    return int((NOW - seconds_ago) * 1000)


def skipped(built: ControlReader) -> float:
    return sum(sample.value for metric in built._metrics.internal_records_skipped.collect()
               for sample in metric.samples if sample.name.endswith("_total"))


async def test_a_record_it_cannot_read_is_skipped_and_the_rest_still_acts() -> None:
    built, commands, _ = reader()
    pause = control.Pause(at=NOW, vendor=Vendor.SMAKE, paused=True)
    hostile = [b"[" * 100_000, b'{"kind":"pause","at":1e999,"vendor":"smake","paused":true}',
               b'{"kind":"hint","at":1,"vendor":"smake","vendor_order_ref":{"id":1}}',
               b"\xff\xfe", b"", b'{"kind":"retry","at":1,"vendor":"smake","order_id":"A",'
               b'"finished_at":' + b"9" * 400 + b',"source_event_id":"e"}']
    consumer = FakeConsumer([[Record(b"pause/smake", raw, at(1), offset=n)
                              for n, raw in enumerate(hostile)]
                             + [Record(pause.key(), pause.model_dump_json().encode(), at(1), offset=9)]])
    await built._read_once(consumer, 0)
    assert skipped(built) == len(hostile)
    assert commands.paused == {Vendor.SMAKE: True}


async def test_every_hint_key_read_is_a_noted_delivery_even_a_tombstone() -> None:
    built, _, _ = reader(opened=[])
    fresh = control.Hint(at=NOW, vendor=Vendor.SMAKE, vendor_order_ref="1", delivery="a" * 32)
    consumer = FakeConsumer([[
        Record(fresh.key(), fresh.model_dump_json().encode(), at(1)),
        Record(control.hint_key("smake", "b" * 32), None, at(60)),
        Record(control.hint_key("smake", "c" * 32), b"anything, too old to read", at(3_600)),
    ]])
    await built._read_once(consumer, 0)
    assert all(digest in built.deliveries for digest in ("a" * 32, "b" * 32, "c" * 32))
    assert skipped(built) == 0, "an old hint is not even parsed"


async def test_the_owner_of_partition_0_removes_stale_hints_and_markers_of_expired_letters() -> None:
    built, _, producer = reader()
    unserved = control.Hint(at=NOW - 400, vendor=Vendor.SMAKE, vendor_order_ref="9", delivery="d" * 32)
    recent = control.Hint(at=NOW - 10, vendor=Vendor.SMAKE, vendor_order_ref="8", delivery="e" * 32)
    expired = control.Replayed(at=NOW, topic="dlq", partition=1, offset=5, to_topic="in")
    foreign = control.Replayed(at=NOW, topic="x" * 1000, partition=2**31 - 1, offset=0, to_topic="in")
    kept = control.Replayed(at=NOW, topic="dlq", partition=1, offset=50, to_topic="in")
    consumer = FakeConsumer([[
        Record(unserved.key(), unserved.model_dump_json().encode(), at(400)),
        Record(recent.key(), recent.model_dump_json().encode(), at(10)),
        Record(expired.key(), expired.model_dump_json().encode(), at(1)),
        Record(kept.key(), kept.model_dump_json().encode(), at(1)),
        Record(foreign.key(), foreign.model_dump_json().encode(), at(1)),
    ]], begins={TopicPartition("dlq", 1): 20})
    await built._read_once(consumer, 0)
    await built._sweep(consumer)
    removed = {key for topic, value, key in producer.sent if topic == "control" and value is None}
    assert removed == {unserved.key(), expired.key()}


async def test_only_an_orders_first_cancellation_is_applied_and_removed_after_retention() -> None:
    built, commands, producer = reader()
    first = control.Cancel(at=NOW - 1, order_id="A-1", event_id="c-1", reason="changed mind")
    second = control.Cancel(at=NOW, order_id="A-1", event_id="c-2")
    old = control.Cancel(at=NOW - 8 * 24 * 3600, order_id="A-0", event_id="c-0")
    consumer = FakeConsumer([[
        Record(first.key(), first.model_dump_json().encode(), at(1), offset=0),
        Record(second.key(), second.model_dump_json().encode(), at(0), offset=1),
        Record(first.key(), first.model_dump_json().encode(), at(0), offset=2),  # read again
        Record(old.key(), old.model_dump_json().encode(), at(8 * 24 * 3600), offset=3),
    ]])
    await built._read_once(consumer, 0)
    # The first one, each time it is read (its pairs take it once); the second one never.
    assert [c.event_id for c in commands.cancelled] == ["c-1", "c-1", "c-0"]
    assert built.cancellations.of("A-1") == first
    await built._sweep(consumer)  # older than finished pairs are kept: removed
    removed = {key for topic, value, key in producer.sent if topic == "control" and value is None}
    assert removed == {old.key()} and built.cancellations.of("A-0") is None
    # Its tombstone, read by every replica, forgets it there too.
    await built._act(first.key(), None, NOW)
    assert built.cancellations.of("A-1") is None
