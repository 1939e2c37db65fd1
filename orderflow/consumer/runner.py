"""One run of a due job (or of a batch of polls read together): what it needs before a call
(`transitions.before_call`), the call, what follows from the answer
(`transitions.after_call`), then the events published and the job's next state recorded,
in that order (docs/architecture.md, decision 4): a crash in between repeats an event (same
id, dropped downstream), never loses one.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

import structlog
from aiokafka.errors import KafkaError

from orderflow.adapters.errors import VendorError
from orderflow.adapters.outcomes import (
    BatchPolling,
    CreateNotAllowed,
    Observation,
    PairState,
)
from orderflow.consumer import tracing, transitions
from orderflow.consumer.backoff import RetryPause
from orderflow.consumer.cancellations import Cancellations
from orderflow.consumer.jobs import Job, JobKey, Phase
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.kafka import retry_kafka
from orderflow.consumer.lanes import VendorLane
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner
from orderflow.consumer.ports import EventSink
from orderflow.contracts.control import Cancel
from orderflow.contracts.events import (
    Order,
    OrderShipmentTracking,
    OrderVendorStatus,
    Vendor,
    VendorStatus,
)

log = get_logger(__name__)

Clock = Callable[[], float]
# Waits until every control record written before the given time has been read here (the
# control reader's `caught_up`): a cancellation read anywhere first is known before a create.
ControlFence = Callable[[float], Awaitable[None]]


class JobRunner:
    """Runs jobs: one call each (or one batch read), then publish, then record."""

    def __init__(self, journal: JobJournal, owner: PartitionOwner, publisher: EventSink,
                 metrics: Metrics, *, clock: Clock = time.time,
                 rng: random.Random | None = None,
                 cancellations: Cancellations | None = None) -> None:
        self._journal = journal
        self._owner = owner
        self._publisher = publisher
        self._metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()
        self.cancellations = cancellations if cancellations is not None else Cancellations()
        self.fence: ControlFence | None = None

    async def run(self, lane: VendorLane, job: Job) -> None:
        """Run the job once. A bug (here, in an adapter, in an event model) neither kills the
        lane nor leaves the job unscheduled: it runs again later, from its last recorded
        state, until the deadline ends it."""
        structlog.contextvars.bind_contextvars(order_id=job.order_id, vendor=str(job.vendor))
        with _run_span(job):
            try:
                await self._run_once(lane, job)
            except Exception:
                self._unexpected(lane, job)

    async def apply_cancellation(self, lane: VendorLane, partition: int, key: JobKey,
                                 cancel: Cancel | None = None) -> None:
        """Apply the order's cancellation (the one given, or the one known) to the pair as
        the table holds it now, if it was not applied yet: see `transitions.cancel_requested`.
        A pair that finished `completed` gets its one `order.cancellation_refused`."""
        cancel = cancel or self.cancellations.of(key[0])
        if cancel is None or not self._owner.is_open(partition):
            return
        job = self._owner.table.get(partition, key)
        if job is None:
            if self._owner.table.owes_refusal(partition, key):
                finished = Job(order_id=key[0], vendor=key[1], partition=partition,
                               source_event_id=cancel.event_id, cancel_id=cancel.event_id)
                refusal = transitions.cancellation_refused(
                    finished, transitions.REFUSED_AFTER_COMPLETION[key[1]], self._clock())
                await retry_kafka(lambda: self._publisher.publish([refusal]),
                                  what="refusing a cancellation", label="apply",
                                  metrics=self._metrics, pause=RetryPause(cap_s=5.0),
                                  still_wanted=lambda: self._owner.is_open(partition))
                self._owner.table.note_refused(partition, key)
                log.info("cancellation refused: the pair had completed", order_id=key[0],
                         vendor=str(key[1]))
            return
        step = transitions.cancel_requested(job, cancel, self._clock())
        if step is not None:
            log.info("cancellation applied", order_id=job.order_id, vendor=str(job.vendor),
                     phase=str(job.phase), cancel_event_id=cancel.event_id)
            await self._publish_and_record(lane, job, step, None)

    async def run_batch(self, lane: VendorLane, jobs: list[Job]) -> None:
        """Polls read in one request; each pair still moves on its own answer. A pair the
        answer does not hold is read on its own (which tells a 404 from a lag)."""
        assert isinstance(lane.adapter, BatchPolling)
        gauge = self._metrics.jobs_in_flight.labels(str(lane.vendor), "poll")
        gauge.inc()
        found: dict[str, Observation] = {}
        failure: Exception | None = None
        try:
            with tracing.running(f"{lane.vendor} poll batch", None, pairs=len(jobs)):
                found = await lane.adapter.poll_many([j.vendor_order_ref or "" for j in jobs])
        except Exception as exc:
            failure = exc
        finally:
            gauge.dec()
        heard = False
        for job in jobs:
            outcome: Observation | Exception | None = (
                failure if failure is not None else found.get(job.vendor_order_ref or ""))
            if outcome is None or job.cancelling:
                # Not in the answer (read on its own), or owing a cancel call, not a poll.
                await self.run(lane, job)
                continue
            structlog.contextvars.bind_contextvars(order_id=job.order_id, vendor=str(job.vendor))
            with _run_span(job):
                try:
                    decision = transitions.after_call(job, outcome, self._clock(), lane.poll,
                                                      self._rng, intent_before=job.intent_at)
                    if not heard:
                        lane.hear(decision)  # one request: one word to the backoff
                        heard = True
                    if failure is None or job is jobs[0]:
                        _log_outcome(job, outcome)
                    await self._publish_and_record(lane, job, decision.step, None)
                except Exception:
                    self._unexpected(lane, job)

    async def _run_once(self, lane: VendorLane, job: Job) -> None:
        cancel = self.cancellations.of(job.order_id)
        if cancel is not None and job.cancel_id is None:
            # Cancelled before this run: decided before anything is sent.
            await self.apply_cancellation(lane, job.partition, job.key, cancel)
            return
        need = transitions.before_call(job, self._clock(), lane.poll)
        if isinstance(need, transitions.Step):
            ending = need.events[0] if need.events else None
            if isinstance(ending, OrderVendorStatus) and ending.reason == transitions.UNREADABLE_ORDER:
                log.error("active job whose order cannot be read, ending it",
                          phase=str(job.phase))
            await self._publish_and_record(lane, job, need, None)
            return
        if job.phase is Phase.SUBMIT and job.intent_at is None and self.fence is not None:
            # A first submission: every cancellation read anywhere before the pair was
            # created is known here first (whether or not the adapter records an intent).
            await self.fence(job.created_at)
            if self.cancellations.of(job.order_id) is not None:
                await self.apply_cancellation(lane, job.partition, job.key)
                return
        running = _Running(job)
        outcome = await self._call(lane, running, need.order)
        decision = transitions.after_call(running.job, outcome, self._clock(), lane.poll,
                                          self._rng, intent_before=job.intent_at)
        lane.hear(decision)
        _log_outcome(running.job, outcome)
        await self._publish_and_record(lane, running.job, decision.step, need.order)

    async def _call(self, lane: VendorLane, running: _Running,
                    order: Order | None) -> Observation | Exception:
        """One call to the vendor: its answer, or the error it ended with (returned, not
        raised: what follows is decided in one place, `transitions.after_call`)."""
        job = running.job
        kind = ("submit" if job.phase is Phase.SUBMIT else "cancel" if job.cancelling
                else "poll")
        gauge = self._metrics.jobs_in_flight.labels(str(job.vendor), kind)
        gauge.inc()
        try:
            if job.phase is Phase.SUBMIT:
                assert order is not None
                return await lane.adapter.submit(order, PairState(
                    job.vendor_order_ref, job.vendor_state, job.intent_at, job.fulfilled_at,
                    record_intent=lambda: self._record_intent(running), media=dict(job.media),
                    again=job.round > 0,
                    # A re-opened pair may adopt an order older than its new round.
                    since=None if job.round > 0 else min(job.created_at,
                                                         order.placed_at.timestamp()),
                    record_media=lambda line_id, media_id: self._record_media(
                        running, line_id, media_id),
                    # Whatever its record says, the order may have reached the vendor from
                    # another copy of it (another input partition, or a repeat later than
                    # finished pairs are kept): the vendor is asked before a create.
                    ask_first=True))
            state = PairState(job.vendor_order_ref, job.vendor_state)
            if job.cancelling:
                cancel = getattr(lane.adapter, "cancel", None)
                if cancel is None:
                    raise CreateNotAllowed(f"{job.vendor} has no way to cancel an order")
                result: Observation = await cancel(order, state)
                return result
            return await lane.adapter.poll(order, state)
        except Exception as exc:
            return exc
        finally:
            gauge.dec()

    async def _record_intent(self, running: _Running) -> None:
        """Record the job with the intent to create, and wait for the brokers, before an
        adapter's create call. The running job carries the intent from then on, so every
        later state of the pair (a retry after a lost answer included) keeps it."""
        self._refuse_if_in_doubt()
        cancel = self.cancellations.of(running.job.order_id)
        if running.job.cancel_id is not None or cancel is not None:
            if cancel is not None and running.job.cancel_id is None:
                running.job = replace(running.job, cancel_id=cancel.event_id,
                                      cancel_reason=cancel.reason)
            raise CreateNotAllowed("the order was cancelled before it was sent")
        if running.job.order_view:
            raise CreateNotAllowed(
                "the vendor no longer holds the order it accepted, and orderflow kept only "
                "what following it needs: publish the order again to have it created anew")
        running.job = replace(running.job, intent_at=self._clock())
        await self._journal.record_running(running.job)
        # Asked again once the write is acknowledged, the moment before the create leaves:
        # a freeze during the write leaves the create to the pair's next owner (who finds
        # the intent and asks the vendor first).
        self._refuse_if_in_doubt()

    def _refuse_if_in_doubt(self) -> None:
        if self._owner.ownership_in_doubt():
            raise OwnershipInDoubt(
                "this replica stood still as long as its group session: the pair may be "
                "another replica's now, so nothing is created until the group assigns again")

    async def _record_media(self, running: _Running, line_id: str, media_id: int) -> None:
        """Record a file uploaded for the pair, and wait for the brokers, before anything
        else is sent: a retry or a restart reuses it instead of uploading it again."""
        media = tuple((line, known) for line, known in running.job.media if line != line_id)
        running.job = replace(running.job, media=(*media, (line_id, media_id)))
        await self._journal.record_running(running.job)

    async def _publish_and_record(self, lane: VendorLane, before: Job, step: transitions.Step,
                                  order: Order | None) -> None:
        """Events first, then the record that marks them done. What the vendor said is kept
        and recorded again on a Kafka error, never asked again: a vendor that cannot be
        asked (Reevoo) must not get a second submission after its 202."""
        after = self._compacted(lane, step.job, order)
        if after.key in lane.poll_again:
            lane.poll_again.discard(after.key)
            if after.phase is not Phase.DONE:
                after = replace(after, due_at=min(after.due_at, self._clock()))
        unpublished = list(step.events)
        # Pairs of the order waiting for this one that it releases or ends: recorded before
        # it, so that a crash in between leaves this pair to run again (and find none
        # waiting), never a pair waiting for one that has moved on.
        dependents = self._dependents(after)

        async def publish_then_record() -> None:
            if unpublished:
                await self._publisher.publish(unpublished)
                self._count(unpublished, order)
                self._time_submission(before, unpublished)
                unpublished.clear()
            while dependents:
                moved = dependents[0]
                if moved.events:
                    await self._publisher.publish(moved.events)
                    self._count(moved.events, None)
                await self._journal.record(moved.job)
                log.info("waiting pair moved on", released_vendor=str(moved.job.vendor),
                         phase=str(moved.job.phase), status=str(moved.job.status))
                dependents.pop(0)
            if _needs_record(before, after):
                await self._journal.record(after)
            else:
                self._journal.keep(after)

        await retry_kafka(
            publish_then_record, what="recording a job's progress", label="apply",
            metrics=self._metrics, pause=RetryPause(cap_s=5.0),
            # Handed over meanwhile: the next owner repeats this step from the last record,
            # asking the vendor before creating anything again.
            still_wanted=lambda: self._owner.is_open(after.partition))

    def _time_submission(self, job: Job, events: Iterable[transitions.OutputEvent]) -> None:
        """The submission SLO's indicator: from the pair's start to the vendor's acceptance."""
        if any(isinstance(e, OrderVendorStatus) and e.status is VendorStatus.SUBMITTED
               for e in events):
            self._metrics.pair_submit.labels(str(job.vendor)).observe(
                max(0.0, self._clock() - job.created_at))

    def _dependents(self, after: Job) -> list[transitions.Step]:
        """The steps of the pairs of the same order that wait for this one and that its new
        state releases (it completed) or ends (it ended otherwise); a pair ended so ends
        those waiting for it in turn (Reevoo waits for Smake, which waits for Zakeke)."""
        if after.status is not VendorStatus.COMPLETED and after.phase is not Phase.DONE:
            return []
        steps = []
        for vendor in Vendor:
            waiting = (None if vendor is after.vendor
                       else self._owner.table.get(after.partition, (after.order_id, vendor)))
            if waiting is not None:
                moved = transitions.upstream_moved(waiting, after, self._clock())
                if moved is not None:
                    # Its own dependents first: each pair is recorded after those it moves.
                    steps.extend(self._dependents(moved.job))
                    steps.append(moved)
        return steps

    def _unexpected(self, lane: VendorLane, job: Job) -> None:
        self._metrics.job_errors.labels(str(job.vendor)).inc()
        log.exception("unexpected error running a job, it will run again later")
        if self._owner.is_open(job.partition):
            current = self._owner.table.get(job.partition, job.key) or job
            self._journal.keep(transitions.retry_later(current, self._clock(), lane.poll,
                                                       self._rng).job)

    def _compacted(self, lane: VendorLane, after: Job, order: Order | None) -> Job:
        """A pair the vendor has accepted keeps only what its polls read (written so to its
        record too): about 1 KB less per waiting Smake pair."""
        if after.order_view or order is None or after.phase not in (Phase.POLL, Phase.TRACKING):
            return after
        view = lane.adapter.polling_view(order)
        if view is None and after.vendor_order_ref is None:
            return after  # nothing to follow it by but the order itself
        return replace(after, order_view=True, order_json=(
            None if view is None else view.model_dump_json(exclude_none=True).encode()))

    def _count(self, events: Iterable[transitions.OutputEvent], order: Order | None) -> None:
        print_files_seen = False
        for event in events:
            if isinstance(event, OrderVendorStatus):
                self._metrics.vendor_orders.labels(str(event.vendor), str(event.status)).inc()
                structlog.contextvars.bind_contextvars(event_id=event.event_id)
                log.info("status announced", status=str(event.status),
                         vendor_order_ref=event.vendor_order_ref, reason=event.reason)
            elif isinstance(event, OrderShipmentTracking):
                log.info("tracking numbers announced after completion",
                         tracking_numbers=event.tracking_numbers)
            elif not print_files_seen and order is not None:
                print_files_seen = True
                self._metrics.order_to_print_files.observe(
                    max(0.0, self._clock() - order.placed_at.timestamp()))


class OwnershipInDoubt(Exception):
    """A create refused because this replica may no longer own the pair (see
    `PartitionOwner.ownership_in_doubt`): tried again later, by whoever owns it then."""


class _Running:
    """The job of a run in progress: its intent to create, once recorded, replaces it."""

    __slots__ = ("job",)

    def __init__(self, job: Job) -> None:
        self.job = job


def _run_span(job: Job) -> contextlib.AbstractContextManager[object]:
    """The span of one run of the pair's job, in the trace of the span that consumed its
    order (with tracing on)."""
    kind = ("cancel" if job.cancelling else "submit" if job.phase is Phase.SUBMIT
            else str(job.phase))
    return tracing.running(f"{job.vendor} {kind}", job.trace, order_id=job.order_id,
                           vendor=str(job.vendor), phase=str(job.phase), round=job.round)


def _log_outcome(job: Job, outcome: Observation | Exception) -> None:
    if isinstance(outcome, Observation):
        return
    if isinstance(outcome, VendorError):
        if not outcome.retriable and job.phase is not Phase.SUBMIT:
            log.warning("vendor refused a poll", error=str(outcome), status=outcome.status)
        elif outcome.retriable:
            log.info("vendor call failed, will retry", error=str(outcome), status=outcome.status,
                     attempt=job.attempts + 1, retry_after=outcome.retry_after)
    elif isinstance(outcome, KafkaError):
        log.warning("could not record the intent to create, will retry", error=str(outcome))
    elif isinstance(outcome, OwnershipInDoubt):
        log.warning("create held back: ownership in doubt", error=str(outcome))
    elif isinstance(outcome, CreateNotAllowed):
        log.warning("create not allowed", error=str(outcome),
                    cancelled=job.cancel_id is not None)
    else:
        # An adapter bug must not lose the job: logged loudly, and it runs again later.
        log.error("unexpected error in vendor adapter, will retry",
                  exc_info=(type(outcome), outcome, outcome.__traceback__))


def _needs_record(before: Job, after: Job) -> bool:
    """A poll that learnt nothing new is not written: after a restart the job simply polls
    again at once. What must survive a crash is every announced change and the vendor ref."""
    return (before.phase, before.status, before.vendor_order_ref, before.vendor_state) != (
        after.phase, after.status, after.vendor_order_ref, after.vendor_state)
