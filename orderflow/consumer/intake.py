"""Intake: consume `order.created`, validate, route, write the pending jobs, then commit.

It never waits on a vendor (DESIGN decision 2). A batch's input offsets are committed only
after its tracking records (and dead letters) are acknowledged, so a crash at any point
re-delivers records whose jobs are then found in the restored table and not created twice.

Rebalances (DESIGN decision 5): on revoke, stop starting jobs, finish the batch in hand, let
running calls end within the grace period, commit; on assign, restore a partition's tracking
state before its jobs run or its input is consumed. A partition kept across a rebalance is
not restored again unless someone else wrote to its tracking partition meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from orderflow.config.settings import Settings
from orderflow.consumer.decode import Undecodable, decode_order_created
from orderflow.consumer.jobs import Job, JobKey, JobTable
from orderflow.consumer.kafka import client_options
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.routing import route
from orderflow.consumer.scheduler import Scheduler
from orderflow.consumer.tracking import TrackingStore

log = get_logger(__name__)

# aiokafka ships no type information: a consumed record, with bytes key and value.
Record: TypeAlias = Any  # ConsumerRecord[bytes, bytes]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._intake.on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._intake.on_assigned({tp.partition for tp in assigned})


class Intake:
    def __init__(
        self,
        settings: Settings,
        table: JobTable,
        scheduler: Scheduler,
        tracking: TrackingStore,
        producer: AIOKafkaProducer,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._topic = settings.topics.orders_created
        self._table = table
        self._scheduler = scheduler
        self._tracking = tracking
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._batch_lock = asyncio.Lock()
        self._stopping = False
        self.joined = False
        self.assigned: set[int] = set()   # partitions of the current assignment
        self.restored: set[int] = set()   # ... whose tracking state is rebuilt
        self._restoring: dict[int, asyncio.Task[None]] = {}
        self._committed: dict[int, int] = {}
        self.last_turn = clock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._consumer is not None:
            return
        kafka = self._settings.kafka
        self._consumer = AIOKafkaConsumer(
            **client_options(kafka),
            group_id=kafka.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=min(kafka.heartbeat_interval_ms, kafka.session_timeout_ms // 3),
            rebalance_timeout_ms=int(self._settings.shutdown_grace_s * 1000) + 30_000,
            max_poll_interval_ms=max(300_000, int(self._settings.shutdown_grace_s * 1000) * 4),
        )
        # Started before subscribing: start() then returns at once instead of waiting for the
        # group's first assignment, which under churn can take many session timeouts, and
        # SIGTERM, /healthz and the rest of the service are not held up by it.
        await self._consumer.start()
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        self._loop_task = asyncio.create_task(self._consume_forever(), name="intake")
        self._lag_task = asyncio.create_task(self._report_lag_forever(), name="intake-lag")

    async def stop(self) -> None:
        """Stop fetching, finish the batch in hand (committed), let running calls finish
        within the grace period, then leave the group."""
        if self._consumer is None:
            return
        self._stopping = True
        async with self._batch_lock:
            for task in (self._loop_task, self._lag_task, *self._restoring.values()):
                if task is not None:
                    task.cancel()
        await asyncio.gather(*(t for t in (self._loop_task, self._lag_task, *self._restoring.values())
                               if t is not None), return_exceptions=True)
        # Leaving the group does not run the revoke callback: drain here, before letting go.
        started, in_flight = time.monotonic(), self._scheduler.in_flight_count()
        await self._scheduler.close_partitions(self.assigned, self._settings.shutdown_grace_s)
        log.info("partitions handed back", partitions=sorted(self.assigned), in_flight=in_flight,
                 drained_in_s=round(time.monotonic() - started, 3),
                 committed={p: self._committed[p] for p in sorted(self._committed)})
        consumer, self._consumer = self._consumer, None
        try:
            await consumer.stop()
        except KafkaError as exc:
            log.warning("leaving the consumer group failed", error=str(exc))

    def is_alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def ready(self) -> bool:
        return self.joined and self.assigned <= self.restored

    # ------------------------------------------------------------------ rebalance

    async def on_revoked(self, partitions: set[int]) -> None:
        if not partitions:
            return
        started = time.monotonic()
        # The batch in hand finishes and is committed before anything is handed over.
        async with self._batch_lock:
            await self._scheduler.close_partitions(partitions, self._settings.shutdown_grace_s)
        log.info("partitions revoked", partitions=sorted(partitions),
                 drained_in_s=round(time.monotonic() - started, 3))

    async def on_assigned(self, partitions: set[int]) -> None:
        if self._stopping:
            # A rebalance under way when the stop began ends after it (leaving the group waits
            # for the join in progress): take nothing, so no job starts here; leaving hands
            # these partitions on.
            log.info("partitions assigned while stopping, not taken", partitions=sorted(partitions))
            return
        assert self._consumer is not None
        self.joined = True
        previous = set(self.assigned)
        self.assigned = set(partitions)
        for gone in previous - partitions:
            self._forget(gone)
        kept = previous & partitions
        if kept:
            # Someone else may have owned a kept partition between our generations (after a
            # session timeout, say): then our table of it is stale and is rebuilt.
            try:
                ends = await self._tracking.end_offsets(kept)
            except KafkaError:
                ends = {p: -1 for p in kept}
            for partition in kept:
                if ends.get(partition) != self._tracking.known_end.get(partition, 0):
                    self._forget(partition)
        to_restore = sorted(p for p in partitions if p not in self.restored)
        for partition in sorted(partitions - set(to_restore)):
            self._scheduler.open_partition(partition)
        if to_restore:
            # Paused before any fetch: no record of these partitions is read before their
            # jobs are known. Restoring runs in the background, so a long history never
            # stalls the group's heartbeat or the health endpoint.
            self._consumer.pause(*(TopicPartition(self._topic, p) for p in to_restore))
            task = asyncio.create_task(self._restore(to_restore), name="restore")
            for partition in to_restore:
                self._restoring[partition] = task
        self._metrics.partitions_owned.set(len(self.assigned))
        self._metrics.partitions_restored.set(len(self.restored & self.assigned))
        log.info("partitions assigned", partitions=sorted(partitions), restoring=to_restore)

    def _forget(self, partition: int) -> None:
        task = self._restoring.pop(partition, None)
        if task is not None and not any(t is task for t in self._restoring.values()):
            task.cancel()
        self.restored.discard(partition)
        self._scheduler.forget_partition(partition)
        self._table.drop_partition(partition)
        self._committed.pop(partition, None)
        with contextlib.suppress(KeyError):
            self._metrics.consumer_lag.remove(str(partition))

    async def _restore(self, partitions: list[int]) -> None:
        delay = 0.5
        while True:
            try:
                reports = await self._tracking.restore(partitions, self._table, on_active=lambda job: None)
                break
            except KafkaError as exc:
                self._metrics.kafka_errors.labels("restore").inc()
                log.warning("restoring tracking state failed, retrying", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        for report in reports:
            if report.partition not in self.assigned:
                self._table.drop_partition(report.partition)
                continue
            self.restored.add(report.partition)
            self._restoring.pop(report.partition, None)
            self._scheduler.open_partition(report.partition)
            log.info("tracking restored", partition=report.partition, records=report.records_read,
                     active=report.active, finished=report.finished)
        if self._consumer is not None:
            self._consumer.resume(*(TopicPartition(self._topic, p) for p in partitions
                                    if p in self.restored))
        self._metrics.partitions_restored.set(len(self.restored & self.assigned))

    # ------------------------------------------------------------------ consuming

    async def _consume_forever(self) -> None:
        assert self._consumer is not None
        delay = 0.5
        while not self._stopping:
            self.last_turn = self._clock()
            self._metrics.last_progress.set(self.last_turn)
            try:
                batch = await self._consumer.getmany(
                    timeout_ms=500, max_records=self._settings.kafka.max_batch_records)
                if batch:
                    async with self._batch_lock:
                        await self._process(batch)
                delay = 0.5
            except KafkaError as exc:
                # Broker stalls, rebalances and lost coordinators are weather, not fatal:
                # keep the process and its state, back off, and try again.
                self._metrics.kafka_errors.labels("intake").inc()
                log.warning("intake hit a Kafka error, retrying", error=str(exc),
                            error_class=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _process(self, batch: dict[TopicPartition, list[Record]]) -> None:
        assert self._consumer is not None
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            if not records:
                continue
            if tp.partition not in self.restored or tp.partition not in self.assigned:
                # Not ours to process (yet): read it again later.
                self._consumer.seek(tp, records[0].offset)
                continue
            try:
                await self._process_partition(tp.partition, records)
            except KafkaError:
                self._consumer.seek(tp, records[0].offset)
                raise
            offsets[tp] = records[-1].offset + 1
        if offsets:
            await self._consumer.commit(offsets)
            for tp, offset in offsets.items():
                self._committed[tp.partition] = offset

    async def _process_partition(self, partition: int, records: list[Record]) -> None:
        now = self._clock()
        dead_letters = []
        new_jobs: list[Job] = []
        seen: set[JobKey] = set()
        for record in records:
            decoded = decode_order_created(record.value, self._settings.kafka.max_record_bytes)
            if isinstance(decoded, Undecodable):
                dead_letters.append(await self._send_dead_letter(record, decoded))
                continue
            order = decoded.order
            vendors = route(order, self._settings)
            if not vendors:
                self._metrics.events_consumed.labels("unrouted").inc()
                continue
            created = 0
            for vendor in vendors:
                key: JobKey = (order.order_id, vendor)
                if key in seen or self._table.knows(partition, key):
                    continue
                seen.add(key)
                created += 1
                new_jobs.append(Job(
                    order_id=order.order_id, vendor=vendor, partition=partition,
                    source_event_id=decoded.event_id, order=order,
                    created_at=now, due_at=now,
                ))
            self._metrics.events_consumed.labels("valid" if created else "duplicate").inc()
        await self._tracking.write_many(new_jobs)
        for future in dead_letters:
            await future
        for job in new_jobs:
            self._table.put(job)
            if partition in self.restored:
                self._scheduler.schedule(job)

    async def _send_dead_letter(self, record: Record, why: Undecodable) -> asyncio.Future[object]:
        log.warning("dead letter", reason=why.reason, partition=record.partition,
                    offset=record.offset, error=why.message[:300])
        self._metrics.dead_letters.labels(why.reason).inc()
        self._metrics.events_consumed.labels("invalid").inc()
        headers = [
            ("orderflow.error.class", why.error_class.encode()),
            ("orderflow.error.message", why.message.encode()),
            ("orderflow.original.topic", record.topic.encode()),
            ("orderflow.original.partition", str(record.partition).encode()),
            ("orderflow.original.offset", str(record.offset).encode()),
            ("orderflow.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        future: asyncio.Future[object] = await self._producer.send(
            self._settings.topics.dead_letter, record.value, key=record.key, headers=headers)
        return future

    # ------------------------------------------------------------------ lag

    async def _report_lag_forever(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            consumer = self._consumer
            partitions = sorted(self.assigned)
            if consumer is None or not partitions:
                continue
            try:
                tps = [TopicPartition(self._topic, p) for p in partitions]
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    committed = self._committed.get(tp.partition)
                    if committed is None:
                        committed = await consumer.committed(tp) or 0
                        self._committed[tp.partition] = committed
                    self._metrics.consumer_lag.labels(str(tp.partition)).set(
                        max(0, ends[tp] - committed))
            except KafkaError as exc:
                log.debug("lag not measured this time", error=str(exc))
