"""The scheduler: runs due jobs of the partitions this process owns, under per-vendor limits,
and turns each result into output events followed by a tracking update (docs/architecture.md,
decisions 3-5).

Per vendor there is one due-time heap and one dispatcher task. The dispatcher takes a
concurrency slot, waits for the earliest due job, and starts it; a slow or failing vendor
therefore only delays its own jobs. Waiting jobs cost a heap entry, not a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import structlog
from aiokafka.errors import KafkaError

from orderflow.adapters.errors import VendorError, VendorRejected
from orderflow.adapters.outcomes import BatchPolling, Observation, PairState, VendorAdapter
from orderflow.config.settings import Settings
from orderflow.consumer import transitions
from orderflow.consumer.backoff import RetryPause, VendorBackoff
from orderflow.consumer.critical import CriticalTasks
from orderflow.consumer.housekeeping import Housekeeping
from orderflow.consumer.jobs import DueQueue, Job, JobKey, JobTable, Phase
from orderflow.consumer.limits import RateLimiter, Slots, budget_share
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import Partitions
from orderflow.consumer.ports import EventSink, JobStore
from orderflow.contracts.events import Order, OrderShipmentTracking, OrderVendorStatus, Vendor

log = get_logger(__name__)

Clock = Callable[[], float]

# Restored jobs queued between two turns of the event loop.
OPEN_CHUNK = 20_000
# A poll read with others may be up to this early: batches fill without holding any poll back.
BATCH_LEAD_S = 2.0
# A pair a webhook named is polled this soon, not at once: the hints of the next second or
# two join it in one batch read (1% of 100,000 waiting pairs changing a minute is ~17 hints
# a second), which a read per hint would cost one request each.
HINT_HOLD_S = 1.0


@dataclass(slots=True)
class _VendorLane:
    adapter: VendorAdapter
    queue: DueQueue = field(default_factory=DueQueue)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    slots: Slots = field(default_factory=lambda: Slots(1))
    limiter: RateLimiter | None = None
    running: set[JobKey] = field(default_factory=set)
    # Throttled or down: the whole lane holds back (one probe at a time while tripped).
    backoff: VendorBackoff = field(default_factory=VendorBackoff)
    call_ended: asyncio.Event = field(default_factory=asyncio.Event)
    # Jobs that came due while their previous run was still finishing: started when it ends.
    deferred: dict[JobKey, int] = field(default_factory=dict)
    dispatcher: asyncio.Task[None] | None = None
    # `orderflow pause`: no call starts while held; jobs keep coming and wait.
    held_by_operator: bool = False
    # The vendor's id of each waiting job -> its order id, for webhooks that name only theirs.
    by_ref: dict[str, str] = field(default_factory=dict)
    # Polls read together in one request (adapters that can: BatchPolling); 1: one by one.
    batch_size: int = 1
    # Pairs a webhook named while their poll was running: the answer in hand may predate the
    # change, so they are polled again as soon as that run ends.
    poll_again: set[JobKey] = field(default_factory=set)


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        adapters: Mapping[Vendor, VendorAdapter],
        table: JobTable,
        publisher: EventSink,
        tracking: JobStore,
        metrics: Metrics,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        critical: CriticalTasks | None = None,
        partitions: Partitions | None = None,
    ) -> None:
        self._settings = settings
        # Which partitions' jobs may start, and the calls each has running.
        self.partitions = partitions or Partitions()
        self._critical = critical or CriticalTasks()
        self._table = table
        self._publisher = publisher
        self._tracking = tracking
        self._metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()
        self._lanes: dict[Vendor, _VendorLane] = {}
        for vendor, adapter in adapters.items():
            vendor_settings = settings.vendor_settings()[str(vendor)]
            lane = _VendorLane(adapter=adapter)
            if isinstance(adapter, BatchPolling):
                lane.batch_size = getattr(vendor_settings, "poll_batch_size", 1)
            lane.slots = Slots(vendor_settings.max_concurrency)
            if vendor_settings.rate_limit_per_s > 0:
                lane.limiter = RateLimiter(vendor_settings.rate_limit_per_s)
            self._lanes[vendor] = lane
        self._housekeeping = Housekeeping(settings, table, self.partitions, tracking, metrics,
                                          self.held_back, clock=clock)
        self._housekeeping_task: asyncio.Task[None] | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for vendor, lane in self._lanes.items():
            lane.dispatcher = self._critical.spawn(self._dispatch(vendor, lane),
                                                   name=f"dispatch-{vendor}")
        self._housekeeping_task = self._critical.spawn(self._housekeeping.run(),
                                                       name="scheduler-housekeeping")

    async def stop(self, grace_s: float) -> None:
        """Start nothing new, let running calls finish within `grace_s`, then cancel."""
        if not self._started:
            return
        self._started = False
        await self.close_partitions(self.partitions.owned(), grace_s)
        tasks = [t for t in (self._housekeeping_task,
                             *(lane.dispatcher for lane in self._lanes.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def is_alive(self) -> bool:
        tasks = [self._housekeeping_task, *(lane.dispatcher for lane in self._lanes.values())]
        return self._started and all(t is not None and not t.done() for t in tasks)

    # ------------------------------------------------------------------ partitions

    async def open_partition(self, partition: int) -> None:
        """Let the partition's jobs run: every active job of it in the table is (re)queued,
        a lane's at once (one heapify, not a push each), letting the loop turn between
        chunks so that /healthz answers while a million restored jobs are queued."""
        self.partitions.open(partition)
        by_lane: dict[Vendor, list[Job]] = {}
        for count, job in enumerate(self._table.active_jobs(partition), 1):
            lane = self._lanes.get(job.vendor)
            if lane is None or job.phase is Phase.DONE:
                continue
            job.version += 1
            by_lane.setdefault(job.vendor, []).append(job)
            if job.vendor_order_ref is not None and job.phase is not Phase.SUBMIT:
                lane.by_ref[job.vendor_order_ref] = job.order_id
            if count % OPEN_CHUNK == 0:
                await asyncio.sleep(0)
        for vendor, jobs in by_lane.items():
            lane = self._lanes[vendor]
            lane.queue.push_many(jobs)
            lane.wake.set()

    async def close_partitions(self, partitions: Iterable[int], timeout_s: float) -> None:
        """Stop starting jobs of these partitions and wait for their running calls, at most
        `timeout_s`; calls still running then are cancelled (their jobs' records are
        unchanged, so the next owner repeats them, asking the vendor before creating)."""
        running = self.partitions.close(list(partitions))
        if running:
            _, late = await asyncio.wait(running, timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                log.warning("cancelled calls still running at hand-over", count=len(late))
                await asyncio.gather(*late, return_exceptions=True)

    def set_share(self, owned: int, total: int) -> None:
        """Take this replica's share of each vendor's cluster-wide budget (max_concurrency,
        rate_limit_per_s): as many parts of it as the input partitions it owns, so adding
        replicas does not multiply what a vendor sees. Called on every assignment."""
        for vendor, lane in self._lanes.items():
            vendor_settings = self._settings.vendor_settings()[str(vendor)]
            concurrency = max(1, int(budget_share(vendor_settings.max_concurrency, owned, total)))
            lane.slots.resize(concurrency)
            self._metrics.vendor_budget.labels(str(vendor), "concurrency").set(concurrency)
            if lane.limiter is not None:
                rate = budget_share(vendor_settings.rate_limit_per_s, owned, total)
                lane.limiter.set_rate(rate)
                self._metrics.vendor_budget.labels(str(vendor), "rate_per_s").set(rate)
        log.info("vendor budget shared", owned_partitions=owned, partitions=total)

    def in_flight_count(self) -> int:
        return self.partitions.calls_running()

    # ------------------------------------------------------------------ jobs

    def schedule(self, job: Job) -> None:
        """Make a job known to its vendor's lane (a new job, or one restored)."""
        lane = self._lanes.get(job.vendor)
        if lane is None or job.phase is Phase.DONE:
            return
        job.version += 1
        self._table.put(job)
        lane.queue.push(job)
        lane.wake.set()
        if job.vendor_order_ref is not None and job.phase is not Phase.SUBMIT:
            lane.by_ref[job.vendor_order_ref] = job.order_id

    # ------------------------------------------------------------------ operator and webhooks

    def hold(self, vendor: Vendor, held: bool) -> bool:
        """`orderflow pause` / `resume`: hold (or let go) every call to the vendor that has
        not started. Returns whether anything changed. Jobs due meanwhile wait in their
        queue and start, earliest due first, when let go."""
        lane = self._lanes.get(vendor)
        if lane is None or lane.held_by_operator is held:
            return False
        lane.held_by_operator = held
        lane.call_ended.set()  # a dispatcher waiting at the gate looks again now
        self._metrics.vendor_paused.labels(str(vendor), "operator").set(1 if held else 0)
        log.warning("vendor held by an operator" if held else "vendor let go by an operator",
                    vendor=str(vendor), waiting=len(lane.queue))
        return True

    def is_held(self, vendor: Vendor) -> bool:
        lane = self._lanes.get(vendor)
        return lane is not None and lane.held_by_operator

    def look_now(self, vendor: Vendor, order_id: str | None, vendor_order_ref: str | None) -> str:
        """A vendor said the pair changed (a webhook): its next poll is due now. Returns
        what became of the hint: `polled_now`, `not_waiting` (no poll to bring forward:
        still being created, or finished) or `not_here` (another replica's pair, or none)."""
        lane = self._lanes.get(vendor)
        if lane is None:
            return "not_here"
        if order_id is None and vendor_order_ref is not None:
            order_id = lane.by_ref.get(vendor_order_ref)
        if order_id is None:
            return "not_here"
        key: JobKey = (order_id, vendor)
        for partition in self.partitions.open_partitions():
            job = self._table.get(partition, key)
            if job is None:
                if self._table.finished_at(partition, key) is not None:
                    return "not_waiting"
                continue
            if vendor_order_ref is not None and job.vendor_order_ref not in (None, vendor_order_ref):
                return "not_here"  # names another order of theirs than the one we follow
            if job.phase not in (Phase.POLL, Phase.TRACKING):
                return "not_waiting"
            if key in lane.running:
                lane.poll_again.add(key)
                return "polled_now"
            soon = self._clock() + (HINT_HOLD_S if lane.batch_size > 1 else 0.0)
            if job.due_at > soon:
                self.schedule(replace(job, due_at=soon))
            return "polled_now"
        return "not_here"

    def reopen(self, order_id: str, vendor: Vendor, finished_at: float,
               make_job: Callable[[int], Job]) -> tuple[int, Job] | None:
        """`orderflow retry`: if this replica holds the pair finished at exactly
        `finished_at`, the job that re-opens it (built by `make_job(partition)`), else None.
        The caller records it before it is scheduled."""
        if self._lanes.get(vendor) is None:
            return None
        key: JobKey = (order_id, vendor)
        for partition in self.partitions.open_partitions():
            if self._table.finished_at(partition, key) == finished_at:
                return partition, make_job(partition)
        return None

    def forget_jobs(self, jobs: Iterable[Job]) -> None:
        """Jobs of a partition handed to another replica: their vendor ids leave the index
        webhooks are looked up by (their queue entries are dropped as stale when popped)."""
        for job in jobs:
            lane = self._lanes.get(job.vendor)
            if lane is not None and job.vendor_order_ref is not None:
                lane.by_ref.pop(job.vendor_order_ref, None)

    def reopen_scheduled(self, job: Job) -> None:
        """The re-opened pair (recorded already) joins its vendor's queue."""
        self._table.reopen(job)
        self.schedule(job)

    async def _dispatch(self, vendor: Vendor, lane: _VendorLane) -> None:
        while True:
            await lane.slots.acquire()
            try:
                while True:
                    await self._vendor_gate(lane)
                    job = await self._next_due(lane)
                    if self._gate_open(lane):
                        break
                    lane.queue.push(job)  # the vendor was paused meanwhile: back in line
                if lane.limiter is not None:
                    await lane.limiter.acquire()
            except BaseException:
                lane.slots.release()
                raise
            current = self._table.get(job.partition, job.key)
            if (not self.partitions.is_open(job.partition) or current is None
                    or current.version != job.version):
                # Its partition was handed back (or the job rescheduled) while we waited for
                # the rate limit: a hand-over has already counted the calls it waits for.
                lane.slots.release()
                continue
            batch = self._gather_batch(lane, job)
            lane.running.update(j.key for j in batch)
            if len(batch) == 1:
                task = asyncio.create_task(self._run(lane, job), name=f"job-{vendor}-{job.order_id}")
            else:
                task = asyncio.create_task(self._run_batch(lane, batch),
                                           name=f"batch-{vendor}-{len(batch)}")
            for partition in {j.partition for j in batch}:
                self.partitions.add_call(partition, task)

            def _done(t: asyncio.Task[None], batch: list[Job] = batch) -> None:
                for j in batch:
                    lane.running.discard(j.key)
                lane.slots.release()
                lane.call_ended.set()
                for j in batch:
                    self._resume_deferred(lane, j.key)

            task.add_done_callback(_done)

    def _batchable(self, job: Job, now: float) -> bool:
        return (job.phase in (Phase.POLL, Phase.TRACKING) and job.vendor_order_ref is not None
                and not transitions.past_deadline(job, now, self._settings.poll))

    def _gather_batch(self, lane: _VendorLane, first: Job) -> list[Job]:
        """The polls to read together with `first`: others of the lane due now or within
        BATCH_LEAD_S (a poll a moment early costs nothing, and it fills the request), up to
        the lane's batch size. Jobs that cannot join (submits) go back in line."""
        now = self._clock()
        if lane.batch_size <= 1 or not self._batchable(first, now):
            return [first]
        batch, keys, back = [first], {first.key}, []
        while len(batch) < lane.batch_size:
            entry = lane.queue.pop_due(now + BATCH_LEAD_S)
            if entry is None:
                break
            partition, key, version = entry
            job = self._table.get(partition, key)
            if job is None or job.version != version or not self.partitions.is_open(partition):
                continue  # stale, as in _next_due
            if key in lane.running:
                lane.deferred[key] = partition
                continue
            if key in keys or not self._batchable(job, now):
                back.append(job)
                continue
            batch.append(job)
            keys.add(key)
        for job in back:
            lane.queue.push(job)
        return batch

    async def _run_batch(self, lane: _VendorLane, jobs: list[Job]) -> None:
        """Polls read in one request; each pair still moves on its own answer. A pair the
        answer does not hold is read on its own (which tells a 404 from a lag)."""
        assert isinstance(lane.adapter, BatchPolling)
        poll = self._settings.poll
        gauge = self._metrics.jobs_in_flight.labels(str(lane.adapter.vendor), "poll")
        gauge.inc()
        found: dict[str, Observation] = {}
        failure: Exception | None = None
        try:
            found = await lane.adapter.poll_many([j.vendor_order_ref or "" for j in jobs])
        except Exception as exc:
            failure = exc
        finally:
            gauge.dec()
        signalled = False
        for job in jobs:
            outcome: Observation | Exception | None = (
                failure if failure is not None else found.get(job.vendor_order_ref or ""))
            if outcome is None:
                await self._run(lane, job)
                continue
            structlog.contextvars.bind_contextvars(order_id=job.order_id, vendor=str(job.vendor))
            try:
                decision = transitions.after_call(job, outcome, self._clock(), poll, self._rng,
                                                  intent_before=job.intent_at)
                if not signalled:
                    self._signal(lane, decision)  # one request: one word to the backoff
                    signalled = True
                if failure is None or job is jobs[0]:
                    _log_outcome(job, outcome)
                await self._apply(lane, job, decision.step, None)
            except Exception:
                self._metrics.job_errors.labels(str(job.vendor)).inc()
                log.exception("unexpected error running a job, it will run again later")
                if self.partitions.is_open(job.partition):
                    self.schedule(transitions.retry_later(job, self._clock(), poll, self._rng).job)

    def _gate_open(self, lane: _VendorLane) -> bool:
        backoff = lane.backoff
        return (not lane.held_by_operator and backoff.wait_s(self._clock()) <= 0
                and not (backoff.tripped and lane.running))

    async def _vendor_gate(self, lane: _VendorLane) -> None:
        """Wait while the vendor is paused (Retry-After, or failing), and while a probe of a
        tripped vendor is still out."""
        while not self._gate_open(lane):
            pause = lane.backoff.wait_s(self._clock())
            if lane.held_by_operator:
                lane.call_ended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.call_ended.wait(), 1.0)
            elif pause > 0:
                await asyncio.sleep(min(pause, 1.0))
            else:
                lane.call_ended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.call_ended.wait(), 1.0)

    def _resume_deferred(self, lane: _VendorLane, key: JobKey) -> None:
        partition = lane.deferred.pop(key, None)
        if partition is None or not self.partitions.is_open(partition):
            return
        job = self._table.get(partition, key)
        if job is not None:
            lane.queue.push(job)
            lane.wake.set()

    async def _next_due(self, lane: _VendorLane) -> Job:
        while True:
            lane.wake.clear()
            now = self._clock()
            entry = lane.queue.pop_due(now)
            if entry is not None:
                partition, key, version = entry
                job = self._table.get(partition, key)
                if (job is None or job.version != version
                        or not self.partitions.is_open(partition)):
                    continue  # stale: rescheduled, finished, or its partition is leaving
                if key in lane.running:
                    # Its last run rescheduled it and is still winding down: never run a
                    # job twice at once, but never drop it either.
                    lane.deferred[key] = partition
                    continue
                return job
            next_due = lane.queue.next_due()
            timeout = None if next_due is None else max(0.0, next_due - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wake.wait(), timeout)

    async def _run(self, lane: _VendorLane, job: Job) -> None:
        structlog.contextvars.bind_contextvars(order_id=job.order_id, vendor=str(job.vendor))
        try:
            await self._run_once(lane, job)
        except Exception:
            # A bug (here, in an adapter, in an event model) must neither kill the lane nor
            # leave the job unscheduled: it runs again later, from its last recorded state,
            # until the deadline ends it.
            self._metrics.job_errors.labels(str(job.vendor)).inc()
            log.exception("unexpected error running a job, it will run again later")
            if self.partitions.is_open(job.partition):
                retry = transitions.retry_later(job, self._clock(), self._settings.poll, self._rng)
                self.schedule(retry.job)

    async def _run_once(self, lane: _VendorLane, job: Job) -> None:
        poll = self._settings.poll
        kind = "submit" if job.phase is Phase.SUBMIT else "poll"
        now = self._clock()
        # The order as a model lives for this run only: the job holds it as JSON (once the
        # vendor accepted it, only what polls read, or nothing).
        order: Order | None = None
        holds_nothing = job.order_view and job.order_json is None and job.phase is not Phase.SUBMIT
        if transitions.past_deadline(job, now, poll):
            step = (transitions.tracking_given_up(job, now) if job.phase is Phase.TRACKING
                    else transitions.timed_out(job, now))
        elif not holds_nothing and (order := _read_order(job)) is None:
            step = transitions.timed_out(job, now, reason="the job's order could not be read")
        else:
            intent_before = job.intent_at
            outcome = await self._call(lane, job, order, kind)
            decision = transitions.after_call(job, outcome, self._clock(), poll, self._rng,
                                              intent_before=intent_before)
            self._signal(lane, decision)
            _log_outcome(job, outcome)
            step = decision.step
        await self._apply(lane, job, step, order)

    async def _call(self, lane: _VendorLane, job: Job, order: Order | None,
                    kind: str) -> Observation | Exception:
        """One call to the vendor: its answer, or the error it ended with (returned, not
        raised: what follows is decided in one place, `transitions.after_call`)."""
        gauge = self._metrics.jobs_in_flight.labels(str(job.vendor), kind)
        gauge.inc()
        try:
            if job.phase is Phase.SUBMIT:
                assert order is not None
                return await lane.adapter.submit(order, PairState(
                    job.vendor_order_ref, job.vendor_state, job.intent_at,
                    record_intent=lambda: self._record_intent(job)))
            return await lane.adapter.poll(order, PairState(job.vendor_order_ref, job.vendor_state))
        except Exception as exc:
            return exc
        finally:
            gauge.dec()

    def _signal(self, lane: _VendorLane, decision: transitions.Decision) -> None:
        signal, now = decision.signal, self._clock()
        if signal is transitions.VendorSignal.ANSWERED:
            lane.backoff.on_answer()
        elif signal is transitions.VendorSignal.THROTTLED:
            lane.backoff.on_throttled(now, decision.retry_after_s)
        elif signal is transitions.VendorSignal.FAILING:
            lane.backoff.on_failure(now)

    async def _record_intent(self, job: Job) -> None:
        """Write the job with the intent to create, and wait for the broker, before an
        adapter's create call. The job in hand carries the intent from then on, so every
        later state of the pair (a retry after a lost answer included) keeps it."""
        if job.order_view:
            # A re-opened pair that keeps only what polls read: never a create from that.
            raise VendorRejected(
                job.vendor, "create", "the vendor no longer holds the order it accepted, and "
                "orderflow kept only what following it needs: publish the order again to have "
                "it created anew")
        job.intent_at = self._clock()
        await self._tracking.write(job)

    async def _apply(self, lane: _VendorLane, before: Job, step: transitions.Step,
                     order: Order | None) -> None:
        """Events first, then the tracking record that marks them done (docs/architecture.md,
        decision 4):
        a crash in between repeats an event (same id, dropped downstream), never loses one."""
        after = self._compacted(lane, step.job, order)
        published = not step.events
        pause = RetryPause(cap_s=5.0)
        while True:
            try:
                if not published:
                    await self._publisher.publish(step.events)
                    published = True
                    self._count(step.events, order)
                if _needs_record(before, after):
                    await self._tracking.write(after)
                break
            except KafkaError as exc:
                # What the vendor said is kept and recorded again, never asked again: a vendor
                # that cannot be asked (Reevoo) must not get a second submission after its 202.
                self._metrics.kafka_errors.labels("apply").inc()
                if not self.partitions.is_open(after.partition):
                    # Handed over meanwhile: the next owner repeats this step from the last
                    # record, asking the vendor before creating anything again.
                    log.warning("could not record a job's progress before hand-over", error=str(exc))
                    return
                delay = pause.take()
                log.warning("could not record a job's progress, retrying", error=str(exc),
                            retry_in_s=delay)
                await asyncio.sleep(delay)
        if after.phase is Phase.DONE:
            self._table.put(after)
            if after.vendor_order_ref is not None:
                lane.by_ref.pop(after.vendor_order_ref, None)
            return
        if after.key in lane.poll_again:
            lane.poll_again.discard(after.key)
            after = replace(after, due_at=min(after.due_at, self._clock()))
        if self.partitions.is_open(after.partition):
            self.schedule(after)
        else:
            self._table.put(after)

    def _compacted(self, lane: _VendorLane, after: Job, order: Order | None) -> Job:
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

    # ------------------------------------------------------------------ for housekeeping

    def held_back(self, now: float) -> dict[Vendor, dict[str, bool]]:
        """Per vendor, whether its calls are held, by reason: operator, backoff."""
        return {vendor: {"operator": lane.held_by_operator,
                         "backoff": lane.backoff.wait_s(now) > 0 or lane.backoff.tripped}
                for vendor, lane in self._lanes.items()}

    @property
    def last_turn(self) -> float:
        return self._housekeeping.last_turn


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
    else:
        # An adapter bug must not lose the job: logged loudly, and it runs again later.
        log.error("unexpected error in vendor adapter, will retry",
                  exc_info=(type(outcome), outcome, outcome.__traceback__))


def _read_order(job: Job) -> Order | None:
    """The job's order for one run, or None (logged) when it has none or it does not validate:
    a record from an older release whose order the current model refuses, say. Such a job
    cannot be sent or followed, and ends."""
    try:
        return job.read_order()
    except ValueError as exc:
        log.error("active job whose order cannot be read, ending it", phase=str(job.phase),
                  error=str(exc)[:500])
        return None


def _needs_record(before: Job, after: Job) -> bool:
    """A poll that learnt nothing new is not written: after a restart the job simply polls
    again at once. What must survive a crash is every announced change and the vendor ref."""
    return (before.phase, before.status, before.vendor_order_ref, before.vendor_state) != (
        after.phase, after.status, after.vendor_order_ref, after.vendor_state)


