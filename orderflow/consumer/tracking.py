"""The tracking topic as the job store: writes, tombstones, and restore on assignment.

Each (order, vendor) job is one record, written to the partition with the same number as
the input record it came from, so whoever owns input partition p owns tracking partition p.
The topic is compacted: the latest record per key is the job's state.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from orderflow.config.settings import KafkaSettings
from orderflow.consumer.jobs import Job, JobKey, tracking_key
from orderflow.consumer.kafka import client_options
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.topic_end import read_to_end
from orderflow.consumer.tracking_record import SkippedRecord, TrackingReplay, encode_job

log = get_logger(__name__)

# aiokafka ships no type information: a consumed record, with bytes key and value.
Record: TypeAlias = Any  # ConsumerRecord[bytes, bytes]

# Reading a long history must not starve the event loop (health checks, heartbeats): the
# restore hands it back at least this often, and takes records from the consumer in batches
# small enough that unpacking one stays well under that.
_SLICE_S = 0.02
_RECORDS_PER_FETCH = 2_000


@dataclass(frozen=True, slots=True)
class RestoredPartition:
    """What a restore read of one tracking partition: the pairs it still follows (key ->
    job) and those that finished (tracking key -> finished_at), as the job table keeps them."""

    partition: int
    active: dict[JobKey, Job]
    finished: dict[bytes, float]
    records_read: int
    end_offset: int
    # Finished pairs a cancellation of their order owes nothing (JobTable.owes_refusal).
    quiet: set[bytes] = field(default_factory=set)


class TrackingStore:
    """The tracking topic's reads and writes. Only the journal (journal.py) writes through
    it; the partition owner reads end offsets and restores through it."""

    def __init__(self, kafka: KafkaSettings, topic: str, producer: AIOKafkaProducer,
                 metrics: Metrics) -> None:
        self._kafka = kafka
        self.topic = topic
        self._producer = producer
        self._metrics = metrics

    async def write(self, job: Job) -> int:
        """Store the job's state; returns its offset once the broker has acknowledged it."""
        metadata = await (await self.send(job))
        return int(metadata.offset)

    async def send(self, job: Job) -> asyncio.Future[Any]:
        """Hand the job's state to the producer; the future it returns gives the record's
        metadata once the broker has acknowledged it."""
        future: asyncio.Future[Any] = await self._producer.send(
            self.topic, encode_job(job), key=tracking_key(job.key), partition=job.partition)
        return future

    async def remove(self, partition: int, keys: Iterable[JobKey]) -> int | None:
        """Tombstones: compaction then drops the records for good. Returns the last one's
        offset (None: no keys)."""
        futures = [await self._producer.send(self.topic, None, key=tracking_key(key),
                                             partition=partition) for key in keys]
        last = None
        for future in futures:
            last = int((await future).offset)
        return last

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        consumer = AIOKafkaConsumer(**client_options(self._kafka), enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    async def restore(self, partitions: list[int]) -> list[RestoredPartition]:
        """Read the tracking partitions from the start to their current end and return what
        they hold, for the job table to adopt (`JobTable.add_partition`).

        Records are reduced as they arrive (TrackingReplay): memory holds the table being
        built, not the history, and only the latest record of an unfinished pair is decoded
        whole. The work is cut into slices of at most `_SLICE_S` between which the event
        loop serves health checks, heartbeats and the other partitions' intake."""
        started = time.monotonic()
        loop_share = _LoopShare()
        replays = {p: TrackingReplay(p) for p in partitions}
        consumer = AIOKafkaConsumer(
            **client_options(self._kafka), enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)

            async def take(tp: TopicPartition, records: list[Record]) -> None:
                into = replays[tp.partition]
                for record in records:
                    skipped = into.apply(record.key, record.value, record.offset)
                    if skipped is not None:
                        self._skipped(skipped, tp.partition)
                    if loop_share.due():
                        await loop_share.hand_back()

            ends = await read_to_end(consumer, tps, take, max_records=_RECORDS_PER_FETCH)
        finally:
            await consumer.stop()

        restored = []
        for partition, replay in replays.items():
            active: dict[JobKey, Job] = {}
            for job in replay.unfinished_jobs():
                if isinstance(job, SkippedRecord):
                    self._skipped(job, partition)
                    continue
                active[job.key] = job
                if loop_share.due():
                    # The restored jobs live until they finish and hold no reference cycles:
                    # moving them out of the collector's generations as they are built spares
                    # the full collections that would otherwise walk every job and order
                    # built so far (over a second at 90,000 active jobs), with the loop
                    # standing still.
                    gc.freeze()
                    await loop_share.hand_back()
            end = ends[TopicPartition(self.topic, partition)]
            self._metrics.tracking_records_restored.inc(replay.records)
            restored.append(RestoredPartition(partition, active, replay.finished, replay.records, end,
                                               replay.quiet))
        gc.freeze()
        self._metrics.tracking_restore_seconds.observe(time.monotonic() - started)
        return restored

    def _skipped(self, skipped: SkippedRecord, partition: int) -> None:
        """A record this release cannot read: its pair is forgotten here (the record that
        should say its state is not readable), and the partition goes on."""
        self._metrics.internal_records_skipped.labels(self.topic).inc()
        log.error("tracking record unreadable, skipped", topic=self.topic, partition=partition,
                  offset=skipped.offset, key=skipped.key[:200].decode(errors="replace"),
                  error=skipped.reason)


class _LoopShare:
    """Says when a stretch of work has run `_SLICE_S` and the event loop is to be handed back
    (the clock is read every 256 steps only)."""

    def __init__(self) -> None:
        self._steps = 0
        self._until = time.monotonic() + _SLICE_S

    def due(self) -> bool:
        self._steps += 1
        return self._steps % 256 == 0 and time.monotonic() >= self._until

    async def hand_back(self) -> None:
        await asyncio.sleep(0)
        self._until = time.monotonic() + _SLICE_S
