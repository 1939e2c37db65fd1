"""The scheduler: runs the due jobs of the partitions this process owns, under per-vendor
limits (docs/architecture.md, decisions 3-5). A façade over its parts:

- one lane per vendor (lanes.py): due queue, slots, rate limit, backoff, operator pause;
- one dispatcher task per lane, which starts each call the lane hands it as a task;
- the runner (runner.py), which runs one job or one batch and records what follows through
  the journal (journal.py), which queues it on its lane again;
- housekeeping (housekeeping.py), once a second.

It listens to the partition owner (a partition's jobs are queued when it opens and dropped
when it closes) and answers what the control topic asks (`EngineCommands`: pause, resume,
a webhook's hint).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from orderflow.adapters.outcomes import VendorAdapter
from orderflow.config.settings import Settings
from orderflow.consumer.cancellations import Cancellations
from orderflow.consumer.critical import CriticalTasks
from orderflow.consumer.housekeeping import Housekeeping
from orderflow.consumer.jobs import Job, JobKey, Phase
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.lanes import VendorLane
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner
from orderflow.consumer.ports import EventSink, HintResult
from orderflow.consumer.runner import ControlFence, JobRunner
from orderflow.contracts.control import Cancel, VendorWork
from orderflow.contracts.events import Vendor

log = get_logger(__name__)

Clock = Callable[[], float]

# A pair a webhook named is polled this soon, not at once: the hints of the next second or
# two join it in one batch read (1% of 100,000 waiting pairs changing a minute is ~17 hints
# a second), which a read per hint would cost one request each.
HINT_HOLD_S = 1.0
# A pair due this long ago and not started is overdue (its lane is behind or held back).
OVERDUE_AFTER_S = 5.0
# Finished, or waiting for another pair of the order (released by the runner, not by time).
_NOT_QUEUED = frozenset({Phase.DONE, Phase.WAIT})


class Scheduler:
    """Lanes, their dispatchers, the runner and housekeeping, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        adapters: Mapping[Vendor, VendorAdapter],
        owner: PartitionOwner,
        journal: JobJournal,
        publisher: EventSink,
        metrics: Metrics,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        critical: CriticalTasks | None = None,
        cancellations: Cancellations | None = None,
    ) -> None:
        self._owner = owner
        self._journal = journal
        self._critical = critical or CriticalTasks()
        self._clock = clock
        vendors = settings.vendor_settings()
        self._lanes: dict[Vendor, VendorLane] = {
            vendor: VendorLane(adapter, vendors[str(vendor)], settings.poll_for(vendor), metrics, clock,
                               self._current)
            for vendor, adapter in adapters.items()}
        self._runner = JobRunner(journal, owner, publisher, metrics,
                                 clock=clock, rng=rng, cancellations=cancellations)
        self.cancellations = self._runner.cancellations
        self._housekeeping = Housekeeping(settings, owner, journal, metrics, self.held_back,
                                          clock=clock)
        self._tasks: list[asyncio.Task[None]] = []
        journal.schedule_with(self.schedule)
        owner.listen(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [self._critical.spawn(self._dispatch(lane), name=f"dispatch-{vendor}")
                       for vendor, lane in self._lanes.items()]
        self._tasks.append(self._critical.spawn(self._housekeeping.run(),
                                                name="scheduler-housekeeping"))
        self._tasks.append(self._critical.spawn(self._tick_forever(), name="liveness-tick"))

    async def stop(self, grace_s: float) -> None:
        """Start nothing new, let running calls finish within `grace_s`, then cancel."""
        if not self._tasks:
            return
        tasks, self._tasks = self._tasks, []
        await self._owner.close(self._owner.owned(), grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def is_alive(self) -> bool:
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    @property
    def last_turn(self) -> float:
        return self._housekeeping.last_turn

    def in_flight_count(self) -> int:
        return self._owner.calls_running()

    # ------------------------------------------------------------------ jobs and partitions

    def schedule(self, job: Job) -> None:
        """The job joins its vendor's lane (the journal calls this once it is recorded)."""
        lane = self._lanes.get(job.vendor)
        if lane is not None and job.phase not in _NOT_QUEUED:
            lane.schedule(job)

    def _current(self, partition: int, key: JobKey) -> Job | None:
        """The table's job of a pair, if its partition is open: what a lane may run."""
        return self._owner.table.get(partition, key) if self._owner.is_open(partition) else None

    async def partition_opened(self, partition: int, jobs: list[Job]) -> None:
        """Every active job of an opened partition joins its lane, a lane's at once (one
        heapify, not a push each)."""
        by_lane: dict[Vendor, list[Job]] = {}
        for job in jobs:
            if job.vendor in self._lanes and job.phase not in _NOT_QUEUED:
                by_lane.setdefault(job.vendor, []).append(job)
        for vendor, of_lane in by_lane.items():
            self._lanes[vendor].schedule_many(of_lane)
        # Cancellations read while nobody here owned the partition apply now.
        for cancel in self.cancellations.all():
            await self._cancel_in(partition, cancel)

    def partitions_closing(self, partitions: set[int]) -> None:
        for lane in self._lanes.values():
            lane.drop_partitions(partitions)

    def share_taken(self, owned: int, total: int) -> None:
        for lane in self._lanes.values():
            lane.take_share(owned, total)
        log.info("vendor budget shared", owned_partitions=owned, partitions=total)

    # ------------------------------------------------------------------ commands and hints

    def fence_creates_with(self, fence: ControlFence) -> None:
        """No first create before the control records written until the pair was created
        are read here (`ControlReader.caught_up`): a cancellation read first wins."""
        self._runner.fence = fence

    async def cancel(self, cancel: Cancel) -> None:
        """An order's cancellation, read from the control topic: applied to the order's
        pairs this replica owns (a pair whose call is running gets it when the call ends)."""
        for partition in self._owner.open_partitions():
            await self._cancel_in(partition, cancel)

    async def _cancel_in(self, partition: int, cancel: Cancel) -> None:
        # Waiting pairs first: ended by the cancellation itself, not by an upstream pair's
        # end ("never fulfilled", "never made").
        keys: list[JobKey] = sorted(
            ((cancel.order_id, vendor) for vendor in self._lanes),
            key=lambda key: self._phase_rank(partition, key))
        for key in keys:
            if self._owner.table.knows(partition, key):
                await self._apply_held(self._lanes[key[1]], partition, key, cancel)

    async def _apply_held(self, lane: VendorLane, partition: int, key: JobKey,
                          cancel: Cancel | None = None) -> None:
        """The cancellation applied with the pair held (no run of it starts meanwhile). A
        pair whose call is running gets it when the call ends (`_calls_ended`)."""
        if not lane.hold(key):
            return
        try:
            await self._runner.apply_cancellation(lane, partition, key, cancel)
        finally:
            lane.let_go(key)

    def _calls_ended(self, lane: VendorLane, batch: list[Job]) -> None:
        """A run ended: its pairs are free again, and those whose order was cancelled
        meanwhile get the cancellation now (in this same turn of the loop, so none read
        while the call ran is missed)."""
        lane.calls_ended(batch)
        for job in batch:
            if self.cancellations.of(job.order_id) is None:
                continue
            current = self._owner.table.get(job.partition, job.key)
            if current is not None and current.cancel_id is not None:
                continue
            task = asyncio.create_task(self._apply_held(lane, job.partition, job.key),
                                       name=f"cancel-{lane.vendor}-{job.order_id}")
            self._owner.add_call(job.partition, task)

    def _phase_rank(self, partition: int, key: JobKey) -> int:
        job = self._owner.table.get(partition, key)
        return 0 if job is not None and job.phase is Phase.WAIT else 1

    def follows(self, vendor: Vendor) -> bool:
        return vendor in self._lanes

    def pause(self, vendor: Vendor) -> bool:
        """`orderflow pause`: hold every call to the vendor that has not started. Returns
        whether anything changed. Jobs due meanwhile wait in their queue."""
        lane = self._lanes.get(vendor)
        return lane is not None and lane.pause()

    def resume(self, vendor: Vendor) -> bool:
        """`orderflow resume`: the held calls start, earliest due first."""
        lane = self._lanes.get(vendor)
        return lane is not None and lane.resume()

    def is_paused(self, vendor: Vendor) -> bool:
        lane = self._lanes.get(vendor)
        return lane is not None and lane.paused

    def look_now(self, vendor: Vendor, order_id: str | None,
                 vendor_order_ref: str | None) -> HintResult:
        """A vendor said the pair changed (a webhook): its next poll is due now."""
        lane = self._lanes.get(vendor)
        if lane is None:
            return HintResult.NOT_HERE
        if order_id is None and vendor_order_ref is not None:
            order_id = self._owner.order_of(vendor, vendor_order_ref)
        if order_id is None:
            return HintResult.NOT_HERE
        key: JobKey = (order_id, vendor)
        table = self._owner.table
        for partition in self._owner.open_partitions():
            job = table.get(partition, key)
            if job is None:
                if table.finished_at(partition, key) is not None:
                    return HintResult.NOT_WAITING
                continue
            if vendor_order_ref is not None and job.vendor_order_ref not in (None, vendor_order_ref):
                return HintResult.NOT_HERE  # names another order of theirs than ours
            if job.phase not in (Phase.POLL, Phase.TRACKING):
                return HintResult.NOT_WAITING
            if key in lane.running:
                lane.poll_again.add(key)
                return HintResult.POLLED_NOW
            soon = self._clock() + (HINT_HOLD_S if lane.batch_size > 1 else 0.0)
            if job.due_at > soon:
                self._journal.keep(replace(job, due_at=soon))
            return HintResult.POLLED_NOW
        return HintResult.NOT_HERE

    def work_by_vendor(self, now: float) -> dict[Vendor, VendorWork]:
        """Per vendor, its pairs here waiting (for their time, or for another pair), due but
        not started for more than OVERDUE_AFTER_S, and running (`orderflow status`)."""
        counts = {vendor: [0, 0, len(lane.running)] for vendor, lane in self._lanes.items()}
        for partition in self._owner.open_partitions():
            for job in self._owner.table.active_jobs(partition):
                entry = counts.get(job.vendor)
                if entry is None or job.key in self._lanes[job.vendor].running:
                    continue
                entry[1 if job.phase is not Phase.WAIT and job.due_at < now - OVERDUE_AFTER_S
                      else 0] += 1
        return {vendor: VendorWork(waiting=w, overdue=o, running=r)
                for vendor, (w, o, r) in counts.items()}

    def held_back(self, now: float) -> dict[Vendor, dict[str, bool]]:
        """Per vendor, whether its calls are held, by reason: operator, backoff."""
        return {vendor: lane.held_back(now) for vendor, lane in self._lanes.items()}

    async def _tick_forever(self) -> None:
        """Tell the partition owner the process runs, every second, on its own: a task that
        waits for Kafka (a sweep during a broker stall) must not look like a frozen process."""
        while True:
            self._owner.tick()
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, lane: VendorLane) -> None:
        """Start each call the lane hands over, as a task counted against its partitions."""
        while True:
            batch = await lane.next_calls()
            if len(batch) == 1:
                task = asyncio.create_task(self._runner.run(lane, batch[0]),
                                           name=f"job-{lane.vendor}-{batch[0].order_id}")
            else:
                task = asyncio.create_task(self._runner.run_batch(lane, batch),
                                           name=f"batch-{lane.vendor}-{len(batch)}")
            for partition in {job.partition for job in batch}:
                self._owner.add_call(partition, task)
            task.add_done_callback(
                lambda _, batch=batch: self._calls_ended(lane, batch))  # type: ignore[misc]
