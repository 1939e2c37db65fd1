"""Reads the control topic (contracts/control.py) whole, from its beginning, for as long as
the replica runs, and acts on what concerns this replica:

- `pause/<vendor>`: hold or let go every call to the vendor (every replica);
- `retry/<vendor>/<order>`: re-open the pair, if this replica owns it and it is still
  finished as the command saw it (kept until then: the owner may be restoring);
- `hint/<vendor>/<id>`: poll the pair now, if this replica owns it; then the hint is
  removed (a tombstone), so the topic holds only hints not yet served.

Start-up reads to the end before the scheduler starts, so a paused vendor is never called
by a replica that has just started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from orderflow.config.settings import Settings
from orderflow.consumer.backoff import RetryPause
from orderflow.consumer.critical import CriticalTasks
from orderflow.consumer.jobs import Job, Phase
from orderflow.consumer.kafka import client_options
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.ports import JobStore
from orderflow.consumer.scheduler import Scheduler
from orderflow.contracts import control

log = get_logger(__name__)

# A hint older than this when read is not acted on: the pair has been polled since (the
# poll interval is the safety net), or its owner restored it and polls it at once anyway.
HINT_MAX_AGE_S = 300.0


class ControlReader:
    def __init__(self, settings: Settings, scheduler: Scheduler, tracking: JobStore,
                 producer: AIOKafkaProducer, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time,
                 critical: CriticalTasks | None = None) -> None:
        self._settings = settings
        self._topic = settings.topics.control
        self._scheduler = scheduler
        self._tracking = tracking
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self._critical = critical or CriticalTasks()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        # Retries not applied yet, by pair: applied when this replica opens the pair's partition.
        self._retries: dict[tuple[str, str], control.Retry] = {}
        self._opened_seen: list[int] = []

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**client_options(self._settings.kafka),
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        self._consumer = consumer
        try:
            partitions = consumer.partitions_for_topic(self._topic)
            if not partitions:
                await consumer.topics()  # fresh metadata, then ask again
                partitions = consumer.partitions_for_topic(self._topic) or {0}
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            # Catch up before anything calls a vendor: the pauses in force are known.
            for tp, end in ends.items():
                while await consumer.position(tp) < end:
                    await self._read_once(consumer, timeout_ms=1000)
        except BaseException:
            await self.stop()
            raise
        self._task = self._critical.spawn(self._read_forever(), name="control")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except KafkaError as exc:
                log.warning("closing the control reader failed", error=str(exc))

    def is_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _read_forever(self) -> None:
        assert self._consumer is not None
        pause = RetryPause()
        while True:
            try:
                await self._read_once(self._consumer, timeout_ms=1000)
                opened = self._scheduler.partitions.open_partitions()
                if opened != self._opened_seen and self._retries:
                    # Partitions opened since: retries kept for them may apply now.
                    for retry in list(self._retries.values()):
                        await self._retry(retry)
                self._opened_seen = opened
                pause.reset()
            except KafkaError as exc:
                self._metrics.kafka_errors.labels("control").inc()
                log.warning("reading the control topic failed, retrying", error=str(exc))
                await asyncio.sleep(pause.take())

    async def _read_once(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> None:
        batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=500)
        for records in batch.values():
            for record in records:
                await self._act(record.key, record.value, record.timestamp / 1000.0)

    async def _act(self, key: bytes | None, value: bytes | None, written_at: float) -> None:
        if value is None:
            return  # a tombstone: a hint served, or a marker withdrawn
        try:
            record = control.parse(value)
        except ValueError as exc:
            self._metrics.control_records.labels("unreadable").inc()
            log.warning("unreadable control record skipped", key=(key or b"")[:200].decode(
                "utf-8", "replace"), error=str(exc)[:300])
            return
        self._metrics.control_records.labels(record.kind).inc()
        if isinstance(record, control.Pause):
            self._scheduler.hold(record.vendor, record.paused)
        elif isinstance(record, control.Retry):
            self._retries[(record.order_id, str(record.vendor))] = record
            await self._retry(record)
        elif isinstance(record, control.Hint):
            await self._hint(record, key, written_at)

    async def _hint(self, hint: control.Hint, key: bytes | None, written_at: float) -> None:
        if self._clock() - max(hint.at, written_at) > HINT_MAX_AGE_S:
            self._metrics.hints.labels(str(hint.vendor), "stale").inc()
            return
        result = self._scheduler.look_now(hint.vendor, hint.order_id, hint.vendor_order_ref)
        self._metrics.hints.labels(str(hint.vendor), result).inc()
        log.info("webhook hint", vendor=str(hint.vendor), order_id=hint.order_id,
                 vendor_order_ref=hint.vendor_order_ref, smake_event=hint.event, result=result)
        if result != "not_here" and key is not None:
            # Served by its owner: the topic need not keep it.
            try:
                await self._producer.send(self._topic, None, key=key)
            except KafkaError as exc:
                log.info("could not remove a served hint", error=str(exc))

    async def _retry(self, retry: control.Retry) -> None:
        now = self._clock()

        def make_job(partition: int) -> Job:
            return Job(
                order_id=retry.order_id, vendor=retry.vendor, partition=partition,
                source_event_id=retry.source_event_id,
                order_json=control_order_json(retry),
                # Accepted before: followed again by its reference. Else submitted again.
                phase=Phase.POLL if retry.order_view else Phase.SUBMIT,
                order_view=retry.order_view, vendor_order_ref=retry.vendor_order_ref,
                created_at=now, due_at=now,
                # The old intent stands: the submission asks the vendor first, as any
                # submission that may have created the order does.
                intent_at=retry.finished_at, round=retry.round + 1,
            )

        found = self._scheduler.reopen(retry.order_id, retry.vendor, retry.finished_at, make_job)
        if found is None:
            return
        _, job = found
        pause = RetryPause(cap_s=5.0)
        while True:
            try:
                await self._tracking.write(job)
                break
            except KafkaError as exc:
                self._metrics.kafka_errors.labels("control").inc()
                log.warning("could not record a retried pair, retrying", error=str(exc))
                await asyncio.sleep(pause.take())
        self._retries.pop((retry.order_id, str(retry.vendor)), None)
        self._scheduler.reopen_scheduled(job)
        log.warning("pair re-opened by an operator", order_id=job.order_id, vendor=str(job.vendor),
                    round=job.round)


def control_order_json(retry: control.Retry) -> bytes | None:
    if retry.order is None:
        return None
    return json.dumps(retry.order, separators=(",", ":"), ensure_ascii=False).encode()
