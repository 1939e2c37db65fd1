"""The tracking topic as the job store: writes, tombstones, and restore on assignment.

Each (order, vendor) job is one record, written to the partition with the same number as
the input record it came from, so whoever owns input partition p owns tracking partition p.
The topic is compacted: the latest record per key is the job's state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from orderflow.config.settings import KafkaSettings
from orderflow.consumer.jobs import Job, JobKey, JobTable, Phase, parse_tracking_key, tracking_key
from orderflow.consumer.kafka import client_options
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics

log = get_logger(__name__)

# Parsing a long history must not starve the event loop (health checks, heartbeats).
_YIELD_EVERY = 2_000


@dataclass(frozen=True, slots=True)
class RestoreReport:
    partition: int
    records_read: int
    active: int
    finished: int
    end_offset: int


class TrackingStore:
    def __init__(self, kafka: KafkaSettings, topic: str, producer: AIOKafkaProducer,
                 metrics: Metrics) -> None:
        self._kafka = kafka
        self.topic = topic
        self._producer = producer
        self._metrics = metrics
        # The highest tracking offset this process has seen per partition (read or written):
        # on a re-assignment, a higher end offset means someone else wrote meanwhile.
        self.known_end: dict[int, int] = {}

    async def write(self, job: Job) -> None:
        """Store the job's state; returns once the broker has acknowledged it."""
        future = await self._producer.send(
            self.topic, job.to_record(), key=tracking_key(job.key), partition=job.partition)
        metadata = await future
        self._note_offset(job.partition, metadata.offset)

    async def write_many(self, jobs: Iterable[Job]) -> None:
        futures = [
            (job.partition, await self._producer.send(
                self.topic, job.to_record(), key=tracking_key(job.key), partition=job.partition))
            for job in jobs
        ]
        for partition, future in futures:
            metadata = await future
            self._note_offset(partition, metadata.offset)

    async def remove(self, partition: int, keys: Iterable[JobKey]) -> None:
        """Tombstones: compaction then drops the records for good."""
        futures = [await self._producer.send(self.topic, None, key=tracking_key(key),
                                             partition=partition) for key in keys]
        for future in futures:
            self._note_offset(partition, (await future).offset)

    def _note_offset(self, partition: int, offset: int) -> None:
        if offset + 1 > self.known_end.get(partition, 0):
            self.known_end[partition] = offset + 1

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        consumer = AIOKafkaConsumer(**client_options(self._kafka), enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    async def restore(self, partitions: list[int], table: JobTable,
                      on_active: Callable[[Job], None]) -> list[RestoreReport]:
        """Read the tracking partitions from the start to their current end and rebuild their
        part of the table; `on_active` receives every unfinished job (to schedule it)."""
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            **client_options(self._kafka), enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            latest: dict[int, dict[bytes, bytes | None]] = {p: {} for p in partitions}
            read: dict[int, int] = dict.fromkeys(partitions, 0)
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=20_000)
                for tp, records in batch.items():
                    partition_latest = latest[tp.partition]
                    for record in records:
                        if record.key is not None:
                            partition_latest[record.key] = record.value
                    read[tp.partition] += len(records)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()

        reports = []
        for partition in partitions:
            table.add_partition(partition)
            active = finished = 0
            for count, (key, value) in enumerate(latest[partition].items(), 1):
                if value is None:
                    continue  # a tombstone: the pair was forgotten on purpose
                try:
                    job = Job.from_record(value, partition)
                except (ValueError, KeyError) as exc:
                    log.error("tracking record unreadable, skipped", key=key.decode(errors="replace"),
                              partition=partition, error=str(exc))
                    continue
                if job.key != parse_tracking_key(key):
                    log.error("tracking record key mismatch, skipped", key=key.decode(errors="replace"))
                    continue
                table.put(job)
                if job.phase is Phase.DONE:
                    finished += 1
                else:
                    active += 1
                    on_active(job)
                if count % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            end = ends[TopicPartition(self.topic, partition)]
            self.known_end[partition] = end
            self._metrics.tracking_records_restored.inc(read[partition])
            reports.append(RestoreReport(partition, read[partition], active, finished, end))
        self._metrics.tracking_restore_seconds.observe(time.monotonic() - started)
        return reports
