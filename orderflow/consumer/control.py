"""Reads the control topic (contracts/control.py) whole, from its beginning, for as long as
the replica runs, and acts on what concerns this replica:

- `pause/<vendor>`: hold or let go every call to the vendor (every replica);
- `retry/<vendor>/<order>`: re-open the pair, if this replica owns it and it is still
  finished as the command saw it (kept until then: the owner may be restoring);
- `cancel/<order>`: an order's cancellation, kept (every replica) and applied to the pairs
  of the order this replica owns, now and whenever it comes to own more of them;
- `hint/<vendor>/<digest>`: poll the pair now, if this replica owns it; then the hint is
  removed (a tombstone), so the topic holds only hints not yet served. Every hint key read,
  tombstones included, is noted in the delivery ledger the webhook endpoint asks, so a
  delivery noted by any replica, or before a restart, is not noted again.

Start-up reads to the end before the scheduler starts, so a paused vendor is never called
by a replica that has just started. A record this release cannot read is skipped with a log
line and a count (`orderflow_internal_records_skipped_total{topic}`), never a crash.

What nobody else removes, the replica owning input partition 0 does (one replica at a time,
and another as soon as the partition moves): hints nobody served, once `HINT_MAX_AGE_S`
old, and replay markers whose dead letter the dead-letter topic no longer holds. Without
that, every replica read a growing residue at every start (200,000 stale hints: 1.5 s of CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from orderflow.config.settings import Settings
from orderflow.consumer.backoff import RetryPause
from orderflow.consumer.cancellations import Cancellations
from orderflow.consumer.critical import CriticalTasks
from orderflow.consumer.fleet import STALE_AFTER_S
from orderflow.consumer.jobs import Job, JobKey, Phase
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.kafka import client_options, retry_kafka
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner
from orderflow.consumer.ports import EngineCommands, HintResult
from orderflow.consumer.topic_end import read_to_end
from orderflow.consumer.webhooks import DeliveryLedger
from orderflow.contracts import control
from orderflow.contracts.control import HINT_MAX_AGE_S

log = get_logger(__name__)

# How often the residue is looked at: hints every minute, replay markers (whose letters go
# only with the dead-letter topic's retention, days) every ten.
SWEEP_HINTS_EVERY_S = 60.0
SWEEP_MARKERS_EVERY_S = 600.0
# The replica owning this input partition sweeps.
SWEEPER_PARTITION = 0
_HINT_PREFIX = b"hint/"
_CANCEL_PREFIX = b"cancel/"


class ControlReader:
    """The control topic's reader: pauses, retries and webhook hints, and its residue."""

    def __init__(self, settings: Settings, commands: EngineCommands, owner: PartitionOwner,
                 journal: JobJournal, producer: AIOKafkaProducer, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time,
                 critical: CriticalTasks | None = None,
                 deliveries: DeliveryLedger | None = None,
                 cancellations: Cancellations | None = None) -> None:
        self._settings = settings
        self._topic = settings.topics.control
        self._commands = commands
        self._owner = owner
        self._journal = journal
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self._critical = critical or CriticalTasks()
        self._consumer: AIOKafkaConsumer | None = None
        self._probe: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        # Retries not applied yet, by pair: applied when this replica opens the pair's partition.
        self._retries: dict[tuple[str, str], control.Retry] = {}
        self._opened_seen: list[int] = []
        self.deliveries = deliveries if deliveries is not None else DeliveryLedger(clock)
        # What stays on the topic until someone removes it: hint key -> when written, and
        # replay marker key -> the dead letter (partition, offset) it stands for.
        self._live_hints: dict[bytes, float] = {}
        self._markers: dict[bytes, tuple[str, int, int]] = {}
        self._swept_hints_at = 0.0
        self._swept_markers_at = 0.0
        self._swept_cancels_at = 0.0
        # Replicas' words about themselves (`replica/<id>`): key -> when written.
        self._replicas: dict[bytes, float] = {}
        self.cancellations = cancellations if cancellations is not None else Cancellations()
        # The fence before creates (`caught_up`): the offsets read so far, and the moment of
        # the latest end-offset reading that the reads have reached.
        self._read_up_to: dict[TopicPartition, int] = {}
        self._tps: list[TopicPartition] = []
        self._synced_at = 0.0
        self._sync: asyncio.Future[None] | None = None
        self._advanced = asyncio.Event()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**client_options(self._settings.kafka),
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        self._consumer = consumer
        try:
            # The fence's end-offset requests go on a connection of their own: on the
            # reader's, a broker answers them only after the fetch waiting there for new
            # records (up to fetch.max.wait.ms), which every first create would wait for.
            self._probe = AIOKafkaConsumer(**client_options(self._settings.kafka),
                                           enable_auto_commit=False)
            await self._probe.start()
            partitions = consumer.partitions_for_topic(self._topic)
            if not partitions:
                await consumer.topics()  # fresh metadata, then ask again
                partitions = consumer.partitions_for_topic(self._topic) or {0}
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            self._tps = tps
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            # Catch up before anything calls a vendor: the pauses in force are known.
            await read_to_end(consumer, tps, self._take, max_records=500)
            await self._note_read(consumer)
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
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(KafkaError):
                await probe.stop()
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
                opened = self._owner.open_partitions()
                if opened != self._opened_seen and self._retries:
                    # Partitions opened since: retries kept for them may apply now.
                    for retry in list(self._retries.values()):
                        await self._retry_kept(retry)
                self._opened_seen = opened
                if SWEEPER_PARTITION in opened:
                    try:
                        await self._sweep(self._consumer)
                    except KafkaError:
                        raise
                    except Exception as exc:  # residue is worth no crash: the next sweep retries
                        log.warning("sweeping the control topic failed", error=str(exc)[:300])
                pause.reset()
            except KafkaError as exc:
                self._metrics.kafka_errors.labels("control").inc()
                log.warning("reading the control topic failed, retrying", error=str(exc))
                await asyncio.sleep(pause.take())

    async def _read_once(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> None:
        batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=500)
        for tp, records in batch.items():
            await self._take(tp, records)
        await self._note_read(consumer)

    async def _take(self, tp: TopicPartition, records: list[Any]) -> None:
        for record in records:
            try:
                await self._act(record.key, record.value, record.timestamp / 1000.0)
            except (KafkaError, asyncio.CancelledError):
                raise
            except Exception as exc:  # whatever the record: the topic goes on
                self._skipped(record, f"{type(exc).__name__}: {exc}")

    async def caught_up(self, since: float) -> None:
        """Return once every record written to the control topic before `since` has been
        read and acted on here. Before a first create: an `order.cancelled` read by any
        replica (of any input partition) before the order's pair was created is then known,
        and the order is never sent. One end-offset request serves every caller waiting
        meanwhile; raises KafkaError when the brokers cannot say (the create waits)."""
        while self._synced_at < since:
            if self._sync is None or self._sync.done():
                self._sync = asyncio.ensure_future(self._sync_once())
            await asyncio.shield(self._sync)

    async def _sync_once(self) -> None:
        probe = self._probe
        if probe is None or not self._tps:
            self._synced_at = self._clock()
            return
        asked_at = self._clock()
        ends = await probe.end_offsets(self._tps)
        while any(self._read_up_to.get(tp, 0) < end for tp, end in ends.items()):
            self._advanced.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), 1.0)
        self._synced_at = max(self._synced_at, asked_at)

    async def _note_read(self, consumer: AIOKafkaConsumer) -> None:
        """Every record before the consumer's position has been acted on (a compacted gap
        at the end holds no record to act on, but the position passes it)."""
        for tp in self._tps:
            self._read_up_to[tp] = await consumer.position(tp)
        self._advanced.set()

    def _skipped(self, record: Any, why: str) -> None:
        self._metrics.internal_records_skipped.labels(self._topic).inc()
        self._metrics.control_records.labels("unreadable").inc()
        log.warning("unreadable control record skipped", topic=self._topic,
                    partition=record.partition, offset=record.offset,
                    key=(record.key or b"")[:200].decode("utf-8", "replace"), error=why[:300])

    async def _act(self, key: bytes | None, value: bytes | None, written_at: float) -> None:
        if key is not None and key.startswith(_HINT_PREFIX):
            # Every hint key, tombstone or not: that delivery was noted.
            self.deliveries.note_key(key, written_at)
            if value is None or self._clock() - written_at > HINT_MAX_AGE_S:
                # Served, or too old to act on (read without parsing: a long residue costs
                # start-up nothing but this); the sweep removes what is still there.
                self._note_hint(key, None if value is None else written_at)
                return
        if value is None:
            self._markers.pop(key or b"", None)
            self._replicas.pop(key or b"", None)
            if key is not None and key.startswith(_CANCEL_PREFIX):
                self.cancellations.forget(key[len(_CANCEL_PREFIX):].decode("utf-8", "replace"))
            return  # a tombstone: a hint served, a marker withdrawn, a cancellation expired
        record = control.parse(value)  # ValueError: skipped by the caller, whatever the bytes
        self._metrics.control_records.labels(record.kind).inc()
        if isinstance(record, control.Pause):
            if record.paused:
                self._commands.pause(record.vendor)
            else:
                self._commands.resume(record.vendor)
        elif isinstance(record, control.Retry):
            self._retries[(record.order_id, str(record.vendor))] = record
            await self._retry_kept(record)
        elif isinstance(record, control.Hint):
            await self._hint(record, key, written_at)
        elif isinstance(record, control.ReplicaStatus) and key is not None:
            self._replicas[key] = record.at  # for `orderflow status`; swept once stale
        elif isinstance(record, control.Cancel):
            # The order's first cancellation is the one applied (the intake of this replica
            # may have noted it already); applying it again to a pair changes nothing.
            self.cancellations.note(record)
            first = self.cancellations.of(record.order_id)
            if first is not None and first.event_id == record.event_id:
                await self._commands.cancel(first)
        elif (isinstance(record, control.Replayed) and key is not None
              and record.topic == self._settings.topics.dead_letter):
            # Only markers of our dead-letter topic: a marker naming another topic (nothing
            # writes one) is not ours to judge.
            self._markers[key] = (record.topic, record.partition, record.offset)

    def _note_hint(self, key: bytes, written_at: float | None) -> None:
        if written_at is None:
            self._live_hints.pop(key, None)
        else:
            self._live_hints[key] = written_at

    async def _hint(self, hint: control.Hint, key: bytes | None, written_at: float) -> None:
        if self._clock() - max(hint.at, written_at) > HINT_MAX_AGE_S:
            self._metrics.hints.labels(str(hint.vendor), "stale").inc()
            if key is not None:
                self._note_hint(key, written_at)
            return
        result = self._commands.look_now(hint.vendor, hint.order_id, hint.vendor_order_ref)
        self._metrics.hints.labels(str(hint.vendor), result).inc()
        log.info("webhook hint", vendor=str(hint.vendor), order_id=hint.order_id,
                 vendor_order_ref=hint.vendor_order_ref, smake_event=hint.event, result=result)
        if key is None:
            return
        if result is HintResult.NOT_HERE:
            self._note_hint(key, written_at)  # the owner may serve it; else the sweep removes it
            return
        # Served by its owner: the topic need not keep it.
        self._note_hint(key, None)
        await self._remove(key, "a served hint")

    async def _remove(self, key: bytes, what: str) -> None:
        try:
            await self._producer.send(self._topic, None, key=key)
        except KafkaError as exc:
            log.info(f"could not remove {what}", error=str(exc))

    async def _sweep(self, consumer: AIOKafkaConsumer) -> None:
        """Remove the residue nobody else removes (this replica owns SWEEPER_PARTITION)."""
        now = self._clock()
        if now - self._swept_hints_at >= SWEEP_HINTS_EVERY_S:
            self._swept_hints_at = now
            stale = [k for k, at in self._live_hints.items() if now - at > HINT_MAX_AGE_S]
            for key in stale:
                del self._live_hints[key]
                await self._remove(key, "a stale hint")
            if stale:
                log.info("stale webhook hints removed", count=len(stale))
        gone_replicas = [k for k, at in self._replicas.items() if now - at > STALE_AFTER_S]
        for key in gone_replicas:
            del self._replicas[key]
            await self._remove(key, "a stale replica status")
        if now - self._swept_cancels_at >= SWEEP_MARKERS_EVERY_S:
            self._swept_cancels_at = now
            expired = self.cancellations.older_than(
                now - self._settings.tracking.terminal_retention_s)
            for cancel in expired:
                self.cancellations.forget(cancel.order_id)
                await self._remove(cancel.key(), "an expired cancellation")
            if expired:
                log.info("cancellations older than finished pairs are kept removed",
                         count=len(expired))
        if self._markers and now - self._swept_markers_at >= SWEEP_MARKERS_EVERY_S:
            self._swept_markers_at = now
            letters = {TopicPartition(t, p) for t, p, _ in self._markers.values()}
            kept_from = await consumer.beginning_offsets(list(letters))
            gone = [k for k, (t, p, o) in self._markers.items()
                    if o < kept_from.get(TopicPartition(t, p), 0)]
            for key in gone:
                del self._markers[key]
                await self._remove(key, "a replay marker")
            if gone:
                log.info("replay markers of expired dead letters removed", count=len(gone))

    async def _retry_kept(self, retry: control.Retry) -> None:
        """A kept retry tried again; one that fails for anything but Kafka is dropped."""
        try:
            await self._retry(retry)
        except (KafkaError, asyncio.CancelledError):
            raise
        except Exception as exc:
            self._retries.pop((retry.order_id, str(retry.vendor)), None)
            self._metrics.internal_records_skipped.labels(self._topic).inc()
            log.warning("a kept retry could not be applied, dropped", order_id=retry.order_id,
                        vendor=str(retry.vendor), error=str(exc)[:300])

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

        found = self._finished_here(retry)
        if found is None:
            return
        job = make_job(found)
        await retry_kafka(lambda: self._journal.record(job), what="recording a retried pair",
                          label="control", metrics=self._metrics, pause=RetryPause(cap_s=5.0))
        self._retries.pop((retry.order_id, str(retry.vendor)), None)
        log.warning("pair re-opened by an operator", order_id=job.order_id, vendor=str(job.vendor),
                    round=job.round)

    def _finished_here(self, retry: control.Retry) -> int | None:
        """The partition holding the pair, if this replica follows its vendor and holds the
        pair finished at exactly the time the command saw (else it is not ours, or it
        changed since: someone re-opened it already)."""
        if not self._commands.follows(retry.vendor):
            return None
        key: JobKey = (retry.order_id, retry.vendor)
        for partition in self._owner.open_partitions():
            if self._owner.table.finished_at(partition, key) == retry.finished_at:
                return partition
        return None


def control_order_json(retry: control.Retry) -> bytes | None:
    if retry.order is None:
        return None
    return json.dumps(retry.order, separators=(",", ":"), ensure_ascii=False).encode()
