"""Reading to a partition's end, without a broker: a fake consumer that answers like the
brokers measured (tests/integration/test_broker_conformance.py): an end listed too low, a
fetch that reports the true high watermark, and compaction that leaves nothing to fetch
below the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from orderflow.consumer.topic_end import read_to_end

TP = TopicPartition("t", 0)


@dataclass
class Rec:
    offset: int


@dataclass
class FakeConsumer:
    offsets: list[int]          # the offsets that hold a record (compaction leaves gaps)
    high_watermark: int
    listed_end: int             # what ListOffsets answers
    per_fetch: int = 2
    position_: int = 0
    reported: int | None = None  # the high watermark as the last fetch reported it
    fetches: int = 0
    log: list[int] = field(default_factory=list)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.listed_end for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self.position_

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.reported

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0,
                      max_records: int = 0) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        self.reported = self.high_watermark
        batch = [o for o in self.offsets if o >= self.position_][: self.per_fetch]
        if not batch:
            return {}
        self.position_ = batch[-1] + 1
        return {TP: [Rec(o) for o in batch]}


async def read(consumer: FakeConsumer, **options: Any) -> tuple[list[int], dict[TopicPartition, int]]:
    taken: list[int] = []

    async def take(tp: TopicPartition, records: list[Rec]) -> None:
        taken.extend(r.offset for r in records)

    ticks = iter(range(10_000))
    stopped = await read_to_end(consumer, [TP], take, clock=lambda: float(next(ticks)), **options)
    return taken, stopped


async def test_an_end_listed_too_low_does_not_hide_the_tail() -> None:
    """One record, then a batch of three: the embedded broker lists the end as 2."""
    consumer = FakeConsumer(offsets=[0, 1, 2, 3], high_watermark=4, listed_end=2, per_fetch=1)
    taken, stopped = await read(consumer)
    assert taken == [0, 1, 2, 3] and stopped == {TP: 4}


async def test_nothing_left_below_the_end_ends_the_read_instead_of_hanging() -> None:
    """Compaction removed the last offsets: fetches answer nothing below the end for ever."""
    consumer = FakeConsumer(offsets=[0, 1, 5], high_watermark=9, listed_end=9)
    taken, stopped = await read(consumer, quiet_s=2.0, quiet_polls=3)
    assert taken == [0, 1, 5] and stopped == {TP: 9}
    assert consumer.fetches < 10


async def test_an_empty_partition_is_not_fetched() -> None:
    consumer = FakeConsumer(offsets=[], high_watermark=0, listed_end=0)
    taken, stopped = await read(consumer)
    assert taken == [] and stopped == {TP: 0} and consumer.fetches == 0


async def test_enough_stops_the_read_early() -> None:
    consumer = FakeConsumer(offsets=list(range(100)), high_watermark=100, listed_end=100)
    taken: list[int] = []

    async def take(tp: TopicPartition, records: list[Rec]) -> None:
        taken.extend(r.offset for r in records)

    await read_to_end(consumer, [TP], take, enough=lambda: len(taken) >= 5)
    assert 5 <= len(taken) < 10
