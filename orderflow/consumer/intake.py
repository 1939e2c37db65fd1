"""Intake: consume `order.created`, validate, route, write the pending jobs, then commit;
and forward each `order.cancelled` to the control topic, where every replica reads it.

It never waits on a vendor (docs/architecture.md, decision 2). A batch's input offsets are
committed only after its tracking records (and dead letters) are acknowledged, so a crash
at any point re-delivers records whose jobs are then found in the restored table and not
created twice. Every record ends as jobs or as exactly one dead letter (decision 10).

Rebalances (decision 5) are heard here and decided by the partition owner
(partitions.py): on revoke, the batch in hand finishes and is committed, then the owner
closes the partitions; on assign, the owner restores what it must, with this intake's
input paused meanwhile (the intake is its `InputGate`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    InconsistentGroupProtocolError,
    KafkaError,
)

from orderflow.config.settings import Settings, env_name
from orderflow.consumer import tracing
from orderflow.consumer.assignment import NAME as ASSIGNMENT_STRATEGY
from orderflow.consumer.assignment import StickyAssignor
from orderflow.consumer.backoff import RetryPause
from orderflow.consumer.cancellations import Cancellations
from orderflow.consumer.critical import CriticalTasks
from orderflow.consumer.dead_letters import DeadLetters
from orderflow.consumer.decode import Undecodable, decode_input
from orderflow.consumer.jobs import Job, JobKey, Phase
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.kafka import client_options
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner
from orderflow.consumer.routing import route, unknown_providers, waits_for
from orderflow.consumer.tracking_record import encode_job
from orderflow.contracts import control
from orderflow.contracts.events import OrderCancelled

log = get_logger(__name__)

# A job's record grows after intake by what vendors tell us (a reference, a state word, a
# reason, each bounded to 1,000 characters by Observation): room kept for that.
TRACKING_RECORD_HEADROOM = 16_384

# aiokafka ships no type information: a consumed record, with bytes key and value.
Record: TypeAlias = Any  # ConsumerRecord[bytes, bytes]


@dataclass
class _Judged:
    """A partition's records of one batch, judged: each record's jobs or dead-letter
    reason, and the cancellations among them."""

    verdicts: list[tuple[Record, list[Job] | Undecodable]] = field(default_factory=list)
    cancels: list[control.Cancel] = field(default_factory=list)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consumer's rebalance callbacks, handed to the intake."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._intake.on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._intake.on_assigned({tp.partition for tp in assigned})


class Intake:
    """The input topic's consumer: records to jobs or dead letters, then commits."""

    def __init__(
        self,
        settings: Settings,
        owner: PartitionOwner,
        journal: JobJournal,
        producer: AIOKafkaProducer,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        critical: CriticalTasks | None = None,
        cancellations: Cancellations | None = None,
    ) -> None:
        self._settings = settings
        self._cancellations = cancellations if cancellations is not None else Cancellations()
        self._critical = critical or CriticalTasks()
        self._topic = settings.topics.orders_created
        self._owner = owner
        self._journal = journal
        self._producer = producer
        self._dead_letters = DeadLetters(producer, settings.topics.dead_letter,
                                         settings.kafka.max_message_bytes)
        self._metrics = metrics
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._batch_lock = asyncio.Lock()
        self._stopping = False
        self.joined = False
        self.last_turn = clock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._consumer is not None:
            return
        kafka = self._settings.kafka
        self._consumer = AIOKafkaConsumer(
            **client_options(kafka),
            group_id=kafka.group_id,
            group_instance_id=kafka.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=min(kafka.heartbeat_interval_ms, kafka.session_timeout_ms // 3),
            rebalance_timeout_ms=int(self._settings.shutdown_grace_s * 1000) + 30_000,
            max_poll_interval_ms=max(300_000, int(self._settings.shutdown_grace_s * 1000) * 4),
            # Partitions stay where their jobs are held (consumer/assignment.py).
            partition_assignment_strategy=(StickyAssignor(self._claims),),
        )
        # Started before subscribing: start() then returns at once instead of waiting for the
        # group's first assignment, which under churn can take many session timeouts, and
        # SIGTERM, /healthz and the rest of the service are not held up by it.
        await self._consumer.start()
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        self._loop_task = self._critical.spawn(self._consume_forever(), name="intake")
        self._lag_task = self._critical.spawn(self._report_lag_forever(), name="intake-lag")

    async def stop(self) -> None:
        """Stop fetching, finish the batch in hand (committed), let running calls finish
        within the grace period, then leave the group."""
        if self._consumer is None:
            return
        self._stopping = True
        tasks = [t for t in (self._loop_task, self._lag_task, *self._owner.restore_tasks())
                 if t is not None]
        async with self._batch_lock:
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Leaving the group does not run the revoke callback: drain here, before letting go.
        started, in_flight = time.monotonic(), self._owner.calls_running()
        owned = self._owner.owned()
        await self._owner.close(owned, self._settings.shutdown_grace_s)
        log.info("partitions handed back", partitions=sorted(owned), in_flight=in_flight,
                 drained_in_s=round(time.monotonic() - started, 3),
                 committed=self._owner.committed_offsets())
        consumer, self._consumer = self._consumer, None
        try:
            await consumer.stop()
        except KafkaError as exc:
            log.warning("leaving the consumer group failed", error=str(exc))

    def _claims(self) -> dict[str, set[int]]:
        """What this replica asks to keep when it joins: the partitions whose jobs it holds,
        none once it is stopping (it will take nothing more)."""
        return {} if self._stopping else {self._topic: self._owner.owned()}

    def is_alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def ready(self) -> bool:
        return self.joined and not self._owner.restoring()

    # ------------------------------------------------------------------ the owner's InputGate

    def pause_input(self, partitions: list[int]) -> None:
        if self._consumer is not None:
            self._consumer.pause(*(TopicPartition(self._topic, p) for p in partitions))

    def resume_input(self, partitions: list[int]) -> None:
        if self._consumer is not None:
            self._consumer.resume(*(TopicPartition(self._topic, p) for p in partitions))

    # ------------------------------------------------------------------ rebalance

    async def on_revoked(self, partitions: set[int]) -> None:
        if not partitions:
            return
        started = time.monotonic()
        # The batch in hand finishes and is committed before anything is handed over.
        async with self._batch_lock:
            await self._owner.close(partitions, self._settings.shutdown_grace_s)
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
        total = len(self._consumer.partitions_for_topic(self._topic) or ())
        restoring = await self._owner.assigned(partitions, total, self)
        log.info("partitions assigned", partitions=sorted(partitions), restoring=restoring)

    # ------------------------------------------------------------------ consuming

    async def _consume_forever(self) -> None:
        assert self._consumer is not None
        pause = RetryPause()
        while not self._stopping:
            self.last_turn = self._clock()
            self._metrics.last_progress.set(self.last_turn)
            try:
                batch = await self._consumer.getmany(
                    timeout_ms=500, max_records=self._settings.kafka.max_batch_records)
                if batch:
                    async with self._batch_lock:
                        await self._process(batch)
                pause.reset()
            except InconsistentGroupProtocolError:
                # Not weather, but not fatal either: the group's members assign by another
                # strategy (a release before sticky assignment still running), and Kafka
                # keeps this replica out until they are gone. Say so, and keep asking.
                self._metrics.kafka_errors.labels("intake").inc()
                log.error("the consumer group's members assign partitions by another "
                          "strategy: this replica stays out of the group until they are gone "
                          "(docs/runbook.md, Safe rollout)", group_id=self._settings.kafka.group_id,
                          strategy=ASSIGNMENT_STRATEGY)
                await asyncio.sleep(pause.take())
            except KafkaError as exc:
                # Broker stalls, rebalances and lost coordinators are weather, not fatal:
                # keep the process and its state, back off, and try again.
                self._metrics.kafka_errors.labels("intake").inc()
                log.warning("intake hit a Kafka error, retrying", error=str(exc),
                            error_class=type(exc).__name__)
                await asyncio.sleep(pause.take())

    async def _process(self, batch: dict[TopicPartition, list[Record]]) -> None:
        assert self._consumer is not None
        judged: dict[TopicPartition, _Judged] = {}
        for tp, records in batch.items():
            if not records:
                continue
            if not self._owner.is_restored(tp.partition):
                # Not ours to process (yet): read it again later.
                self._consumer.seek(tp, records[0].offset)
                continue
            judged[tp] = self._judge(tp.partition, records)
        try:
            # The batch's cancellations first, whatever partition they came on: they go to
            # the control topic, where every replica reads them, before any of the batch's
            # orders becomes a job, so an order read with its cancellation is never sent.
            await self._forward([c for verdicts in judged.values() for c in verdicts.cancels])
        except KafkaError:
            for tp in judged:
                self._consumer.seek(tp, batch[tp][0].offset)
            raise
        offsets: dict[TopicPartition, int] = {}
        for tp, verdicts in judged.items():
            try:
                await self._settle(tp.partition, verdicts)
            except KafkaError:
                for later in list(judged)[list(judged).index(tp):]:
                    self._consumer.seek(later, batch[later][0].offset)
                raise
            offsets[tp] = batch[tp][-1].offset + 1
        if offsets:
            await self._consumer.commit(offsets)
            for tp, offset in offsets.items():
                self._owner.note_committed(tp.partition, offset)

    def _judge(self, partition: int, records: list[Record]) -> _Judged:
        """Each record's verdict: its new jobs (none for a repeat), a cancellation, or why it
        is a dead letter (records dead-lettered on an earlier try are left out)."""
        now = self._clock()
        done_before = self._owner.dead_lettered(partition)
        seen: set[JobKey] = set()
        judged = _Judged()
        for record in records:
            if record.offset in done_before:
                continue
            with tracing.consuming(self._topic, partition, record.offset, record.key,
                                   record.headers, self._settings.kafka.group_id):
                # The pair keeps this span's context: its later runs belong to this trace.
                verdict = self._verdict(partition, record, now, seen,
                                        trace=tracing.traceparent_of_current())
            if isinstance(verdict, control.Cancel):
                judged.cancels.append(verdict)
                self._metrics.events_consumed.labels("cancellation").inc()
                continue
            judged.verdicts.append((record, verdict))
            if not isinstance(verdict, Undecodable):
                self._metrics.events_consumed.labels("valid" if verdict else "duplicate").inc()
        return judged

    async def _settle(self, partition: int, judged: _Judged) -> None:
        """Every record ends as jobs or as exactly one dead letter; raises KafkaError only
        for a write that may succeed when the batch is tried again (records dead-lettered
        on an earlier try of the same batch are not written again)."""
        done_before = self._owner.dead_lettered(partition)
        verdicts = judged.verdicts
        refused = await self._journal.record_new(partition, {
            record.offset: verdict for record, verdict in verdicts
            if not isinstance(verdict, Undecodable) and verdict})
        verdicts = [(record, Undecodable(
                        "too_large", "RecordTooLarge",
                        "the order's tracking record is larger than the brokers accept"))
                    if record.offset in refused else (record, verdict)
                    for record, verdict in verdicts]

        # Dead letters are all handed to the producer first, then awaited: one round trip
        # per batch, not per record.
        letters = [(record, verdict, await self._dead_letters.send(record, verdict))
                   for record, verdict in verdicts if isinstance(verdict, Undecodable)]
        for record, why, letter in letters:
            await letter.written()
            self._metrics.dead_letters.labels(why.reason).inc()
            self._metrics.events_consumed.labels("invalid").inc()
            done_before.add(record.offset)

    async def _forward(self, cancels: list[control.Cancel]) -> None:
        """Each cancellation not known yet, written to the control topic and acknowledged
        (a crash before the commit writes it again: the same order's first one counts)."""
        new = [cancel for cancel in cancels if self._cancellations.of(cancel.order_id) is None]
        pending = [await self._producer.send(self._settings.topics.control,
                                             cancel.model_dump_json().encode(), key=cancel.key())
                   for cancel in new]
        for future in pending:
            await future
        for cancel in cancels:
            # Known here at once: this replica sends none of the order's pairs from now on
            # (its control reader applies it to what is already here when it reads it back).
            self._cancellations.note(cancel)
        for cancel in new:
            log.info("order cancellation forwarded", order_id=cancel.order_id,
                     cancel_event_id=cancel.event_id)

    def _verdict(self, partition: int, record: Record, now: float, seen: set[JobKey],
                 trace: str | None = None) -> list[Job] | Undecodable | control.Cancel:
        """The new jobs of a record (none for a repeat), or why it is a dead letter. Never
        raises: an unexpected error is that record's dead letter (reason `internal`), so one
        record that trips a bug cannot stop its partition."""
        order_id: str | None = None
        try:
            decoded = decode_input(record.value, self._settings.kafka.max_record_bytes)
            if isinstance(decoded, Undecodable):
                return decoded
            if isinstance(decoded, OrderCancelled):
                return control.Cancel(at=now, order_id=decoded.order_id,
                                      event_id=decoded.event_id, reason=decoded.reason)
            order = decoded.order
            order_id = order.order_id
            for where, count in unknown_providers(order).items():
                self._metrics.unknown_provider_lines.labels(where).inc(count)
            vendors = route(order, self._settings)
            if not vendors:
                self._metrics.events_consumed.labels("unrouted").inc()
                return []
            jobs: list[Job] = []
            waiting = waits_for(order, vendors, self._settings)
            for vendor in vendors:
                key: JobKey = (order.order_id, vendor)
                if key in seen or self._owner.table.knows(partition, key):
                    continue
                jobs.append(Job(
                    order_id=order.order_id, vendor=vendor, partition=partition,
                    source_event_id=decoded.event_id, order=order,
                    created_at=now, due_at=now,
                    phase=Phase.WAIT if vendor in waiting else Phase.SUBMIT,
                    waits_for=waiting.get(vendor), trace=trace,
                ))
            largest = max((len(encode_job(job)) for job in jobs), default=0)
            room = self._settings.kafka.max_message_bytes - TRACKING_RECORD_HEADROOM
            if largest > room:
                return Undecodable(
                    "too_large", "RecordTooLarge",
                    f"the order's tracking record would be {largest} bytes; with room for its "
                    f"updates it must stay under {room} "
                    f"({env_name('kafka', 'max_message_bytes')} less {TRACKING_RECORD_HEADROOM})")
            seen.update(job.key for job in jobs)
            return jobs
        except Exception as exc:
            log.exception("unexpected error handling an input record, dead-lettering it",
                          partition=partition, offset=record.offset, order_id=order_id)
            return Undecodable("internal", type(exc).__name__,
                               f"unexpected error handling the record: {exc}")

    # ------------------------------------------------------------------ lag

    async def _report_lag_forever(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            consumer = self._consumer
            partitions = sorted(self._owner.owned())
            if consumer is None or not partitions:
                continue
            try:
                tps = [TopicPartition(self._topic, p) for p in partitions]
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    committed = self._owner.committed(tp.partition)
                    if committed is None:
                        committed = await consumer.committed(tp) or 0
                        self._owner.note_committed(tp.partition, committed, by_us=False)
                    self._metrics.consumer_lag.labels(str(tp.partition)).set(
                        max(0, ends[tp] - committed))
            except KafkaError as exc:
                log.debug("lag not measured this time", error=str(exc))
