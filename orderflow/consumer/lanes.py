"""A vendor's lane: its due jobs and everything that decides when the next call to it may
start (docs/architecture.md, decisions 3 and 9).

Per vendor there is one lane: a due-time heap, concurrency slots, a rate limit, the backoff
the vendor's own answers drive, an operator's pause, and the jobs that may be read together
in one request. `next_calls` waits for a slot, for the vendor to be callable, and for the
earliest due job, and hands back what to run; a slow or failing vendor therefore only
delays its own jobs, and waiting jobs cost a heap entry, not a task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from orderflow.adapters.outcomes import BatchPolling, VendorAdapter
from orderflow.config.settings import PollSettings, VendorSettings
from orderflow.consumer import transitions
from orderflow.consumer.backoff import VendorBackoff
from orderflow.consumer.jobs import DueQueue, Job, JobKey, Phase
from orderflow.consumer.limits import RateLimiter, Slots, budget_share
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.contracts.events import Vendor

log = get_logger(__name__)

Clock = Callable[[], float]
# The table's current job of a pair, if its partition is open (else None).
Lookup = Callable[[int, JobKey], Job | None]

# A poll read with others may be up to this early: batches fill without holding any poll back.
BATCH_LEAD_S = 2.0


class VendorLane:
    """One vendor's due jobs, call budget, backoff and operator pause."""

    def __init__(self, adapter: VendorAdapter, vendor_settings: VendorSettings,
                 poll: PollSettings, metrics: Metrics, clock: Clock, lookup: Lookup) -> None:
        self.adapter = adapter
        self.vendor: Vendor = adapter.vendor
        self._settings = vendor_settings
        # The vendor's polling settings (its own deadline among them).
        self.poll = poll
        self._metrics = metrics
        self._clock = clock
        self._lookup = lookup
        self.queue = DueQueue()
        self._wake = asyncio.Event()
        self._slots = Slots(vendor_settings.max_concurrency)
        self._limiter = (RateLimiter(vendor_settings.rate_limit_per_s)
                         if vendor_settings.rate_limit_per_s > 0 else None)
        # Throttled or down: the whole lane holds back (one probe at a time while tripped).
        self._backoff = VendorBackoff()
        self._call_ended = asyncio.Event()
        # `orderflow pause`: no call starts while paused; jobs keep coming and wait.
        self.paused = False
        # Pairs with a call running, and those that came due meanwhile (started when it ends).
        self.running: set[JobKey] = set()
        self._deferred: dict[JobKey, int] = {}
        # Pairs a webhook named while their poll was running: the answer in hand may predate
        # the change, so they are polled again as soon as that run ends.
        self.poll_again: set[JobKey] = set()
        # Polls read together in one request (adapters that can: BatchPolling); 1: one by one.
        self.batch_size = (getattr(vendor_settings, "poll_batch_size", 1)
                           if isinstance(adapter, BatchPolling) else 1)

    # ------------------------------------------------------------------ the due queue

    def schedule(self, job: Job) -> None:
        """The job runs when due (its entry is skipped if it is no longer current then)."""
        self.queue.push(job)
        self._wake.set()

    def schedule_many(self, jobs: list[Job]) -> None:
        if jobs:
            self.queue.push_many(jobs)
            self._wake.set()

    def drop_partitions(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.queue.drop_partition(partition)

    # ------------------------------------------------------------------ budget, backoff, pause

    def take_share(self, owned: int, total: int) -> None:
        """This replica's share of the vendor's cluster-wide budget (max_concurrency,
        rate_limit_per_s): as many parts of it as the input partitions it owns, so adding
        replicas does not multiply what the vendor sees."""
        concurrency = max(1, int(budget_share(self._settings.max_concurrency, owned, total)))
        self._slots.resize(concurrency)
        self._metrics.vendor_budget.labels(str(self.vendor), "concurrency").set(concurrency)
        if self._limiter is not None:
            rate = budget_share(self._settings.rate_limit_per_s, owned, total)
            self._limiter.set_rate(rate)
            self._metrics.vendor_budget.labels(str(self.vendor), "rate_per_s").set(rate)

    def hear(self, decision: transitions.Decision) -> None:
        """What a call's outcome says about the vendor as a whole."""
        signal, now = decision.signal, self._clock()
        if signal is transitions.VendorSignal.ANSWERED:
            self._backoff.on_answer()
        elif signal is transitions.VendorSignal.THROTTLED:
            self._backoff.on_throttled(now, decision.retry_after_s)
        elif signal is transitions.VendorSignal.FAILING:
            self._backoff.on_failure(now)

    def pause(self) -> bool:
        """`orderflow pause`: no call that has not started starts. Whether it changed."""
        return self._set_paused(True)

    def resume(self) -> bool:
        """`orderflow resume`: the jobs due meanwhile start, earliest due first."""
        return self._set_paused(False)

    def _set_paused(self, paused: bool) -> bool:
        if self.paused is paused:
            return False
        self.paused = paused
        self._call_ended.set()  # a dispatcher waiting at the gate looks again now
        self._metrics.vendor_paused.labels(str(self.vendor), "operator").set(1 if paused else 0)
        log.warning("vendor held by an operator" if paused else "vendor let go by an operator",
                    vendor=str(self.vendor), waiting=len(self.queue))
        return True

    def held_back(self, now: float) -> dict[str, bool]:
        """Whether its calls are held, by reason: operator, backoff."""
        return {"operator": self.paused,
                "backoff": self._backoff.wait_s(now) > 0 or self._backoff.tripped}

    # ------------------------------------------------------------------ dispatch

    async def next_calls(self) -> list[Job]:
        """Wait for a free slot, a callable vendor and a due job, and return the jobs of the
        next call (one, or a batch of polls), marked running; the slot is held until
        `calls_ended`."""
        while True:
            await self._slots.acquire()
            try:
                while True:
                    await self._gate()
                    job = await self._next_due()
                    if self._gate_open():
                        break
                    self.queue.push(job)  # the vendor was paused meanwhile: back in line
                if self._limiter is not None:
                    await self._limiter.acquire()
            except BaseException:
                self._slots.release()
                raise
            if self._lookup(job.partition, job.key) is not job:
                # Its partition was handed back (or the job rescheduled) while we waited for
                # the rate limit: a hand-over has already counted the calls it waits for.
                self._slots.release()
                continue
            batch = self._gather_batch(job)
            self.running.update(j.key for j in batch)
            return batch

    def calls_ended(self, batch: list[Job]) -> None:
        for job in batch:
            self.running.discard(job.key)
        self._slots.release()
        self._call_ended.set()
        for job in batch:
            self._run_deferred(job.key)

    def hold(self, key: JobKey) -> bool:
        """Mark a pair busy without a call (its cancellation being applied): no run of it
        starts meanwhile. False when it is running already."""
        if key in self.running:
            return False
        self.running.add(key)
        return True

    def let_go(self, key: JobKey) -> None:
        self.running.discard(key)
        self._run_deferred(key)

    def _run_deferred(self, key: JobKey) -> None:
        partition = self._deferred.pop(key, None)
        current = None if partition is None else self._lookup(partition, key)
        if current is not None:
            self.schedule(current)

    def _gate_open(self) -> bool:
        backoff = self._backoff
        return (not self.paused and backoff.wait_s(self._clock()) <= 0
                and not (backoff.tripped and self.running))

    async def _gate(self) -> None:
        """Wait while the vendor is paused (by an operator, Retry-After, or failing), and
        while a probe of a tripped vendor is still out."""
        while not self._gate_open():
            pause = self._backoff.wait_s(self._clock())
            if pause > 0 and not self.paused:
                await asyncio.sleep(min(pause, 1.0))
            else:
                self._call_ended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._call_ended.wait(), 1.0)

    def _runnable(self, job: Job) -> bool:
        """Whether a popped entry's job is to run now: current, and not running already."""
        if self._lookup(job.partition, job.key) is not job:
            return False  # stale: rescheduled, finished, or its partition is leaving
        if job.key in self.running:
            # Its last run rescheduled it and is still winding down: never run a job twice
            # at once, but never drop it either.
            self._deferred[job.key] = job.partition
            return False
        return True

    async def _next_due(self) -> Job:
        while True:
            self._wake.clear()
            now = self._clock()
            while (job := self.queue.pop_due(now)) is not None:
                if self._runnable(job):
                    return job
            next_due = self.queue.next_due()
            timeout = None if next_due is None else max(0.0, next_due - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _batchable(self, job: Job, now: float) -> bool:
        # A pair owing a cancel call is not a poll: it goes on its own (`JobRunner._call`).
        return (job.phase in (Phase.POLL, Phase.TRACKING) and job.vendor_order_ref is not None
                and not job.cancelling and not transitions.past_deadline(job, now, self.poll))

    def _gather_batch(self, first: Job) -> list[Job]:
        """The polls to read together with `first`: others of the lane due now or within
        BATCH_LEAD_S (a poll a moment early costs nothing, and it fills the request), up to
        the lane's batch size. Jobs that cannot join (submits) go back in line."""
        now = self._clock()
        if self.batch_size <= 1 or not self._batchable(first, now):
            return [first]
        batch, keys, back = [first], {first.key}, []
        while (len(batch) < self.batch_size
               and (job := self.queue.pop_due(now + BATCH_LEAD_S)) is not None):
            if not self._runnable(job):
                continue
            if job.key in keys or not self._batchable(job, now):
                back.append(job)
                continue
            batch.append(job)
            keys.add(job.key)
        for job in back:
            self.queue.push(job)
        return batch
