"""Reading assigned partitions "to their end": restore, the control topic's start-up read and
the operator commands all do it, and all do it here.

Where the end is. `end_offsets` (ListOffsets) is one answer, and every fetch response
carries the partition's high watermark too. On Kafka both are the high watermark. A broker
may under-report the first (the embedded one answers the last batch's base offset + 1, so
after a batch of three the tail's last two records were missed), while its fetches are right:
so the end read to is the larger of the two, and it grows with what the fetches report.
Right on Kafka for the same reason: neither can be past the high watermark.

When a read must stop short of that end. Compaction (and transaction markers, which are no
records) can leave no record to fetch between a position and the end: a broker then answers
fetches with nothing, for ever. When a partition below its end has had no record for
`quiet_s` (2 s, four fetch waits) over at least `quiet_polls` reads, the read takes it that
nothing is left there, and says so in the log. On Kafka that cannot cut a read short: the
active segment, which holds the last record, is never compacted, and orderflow writes no
transactions; a broker that is merely slow answers within a fetch wait.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderflow.consumer.logging import get_logger

log = get_logger(__name__)

# aiokafka ships no type information: a consumed record.
Record = Any
TakeRecords = Callable[[TopicPartition, list[Record]], Awaitable[None]]


async def read_to_end(consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition],
                      take: TakeRecords, *, max_records: int = 2_000, poll_ms: int = 500,
                      quiet_s: float = 2.0, quiet_polls: int = 3,
                      enough: Callable[[], bool] | None = None,
                      clock: Callable[[], float] = time.monotonic) -> dict[TopicPartition, int]:
    """Read the assigned partitions from their current positions to their ends, handing
    each fetched batch to `take` (until `enough()` says so, if given); returns where each
    stopped (the offset after the last record read, or the end)."""
    wanted = list(tps)
    listed = await consumer.end_offsets(wanted)
    stopped: dict[TopicPartition, int] = {}
    remaining: set[TopicPartition] = set()
    for tp in wanted:
        position = await consumer.position(tp)
        if position >= listed[tp]:
            stopped[tp] = max(position, listed[tp])
        else:
            remaining.add(tp)
    # Per partition: when it last had records (or the read began), and empty reads since.
    last_records = dict.fromkeys(remaining, clock())
    empty = dict.fromkeys(remaining, 0)
    while remaining and not (enough is not None and enough()):
        fetched = await consumer.getmany(*remaining, timeout_ms=poll_ms, max_records=max_records)
        for tp, records in fetched.items():
            if records:
                last_records[tp], empty[tp] = clock(), 0
                await take(tp, records)
        for tp in list(remaining):
            position = await consumer.position(tp)
            end = max(listed[tp], consumer.highwater(tp) or 0)
            if position >= end:
                remaining.discard(tp)
                stopped[tp] = position
                continue
            if fetched.get(tp):
                continue
            empty[tp] += 1
            if empty[tp] >= quiet_polls and clock() - last_records[tp] >= quiet_s:
                log.info("nothing left to read below the end (compacted away)",
                         topic=tp.topic, partition=tp.partition, position=position, end=end)
                remaining.discard(tp)
                stopped[tp] = end
    return stopped
