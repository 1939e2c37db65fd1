"""The life of each input partition this replica owns, in one place (docs/architecture.md,
decision 5):

    assigned -> RESTORING -> OPEN -> CLOSING -> gone
                               ^________|        (kept across a rebalance: open again)

- RESTORING: its tracking state is being read; none of its jobs run and its input is not read.
- OPEN: its jobs run and its input is read.
- CLOSING: revoked; nothing of it starts, the calls it has running are let finish.

`PartitionOwner` holds one `OwnedPartition` per partition (stage, restore, running calls,
committed and dead-lettered input offsets, the known end of its tracking partition, the
vendor-reference index of its pairs) beside the job table, and makes every rebalance
decision: what to restore, what is kept, what is stale, what is forgotten. Forgetting a
partition is one removal (`forget`). The intake tells it of assignments and revocations;
the scheduler listens (to queue a partition's jobs when it opens, to drop them when it
closes, to take its share of the vendors' budgets), and asks whether a partition is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from aiokafka.errors import KafkaError

from orderflow.consumer.critical import CriticalTasks
from orderflow.consumer.jobs import Job, JobTable, Phase
from orderflow.consumer.kafka import retry_kafka
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.tracking import RestoredPartition
from orderflow.contracts.events import Vendor

log = get_logger(__name__)

# Restored jobs indexed between two turns of the event loop.
OPEN_CHUNK = 20_000


class Stage(StrEnum):
    """An owned partition's stage (module docstring)."""

    RESTORING = "restoring"
    OPEN = "open"
    CLOSING = "closing"


class TrackingReader(Protocol):
    """What the owner reads of the tracking topic (the TrackingStore)."""

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]: ...

    async def restore(self, partitions: list[int]) -> list[RestoredPartition]: ...


class InputGate(Protocol):
    """Whether an input partition's records are fetched (the intake's consumer)."""

    def pause_input(self, partitions: list[int]) -> None: ...

    def resume_input(self, partitions: list[int]) -> None: ...


@dataclass(slots=True, eq=False)
class OwnedPartition:
    """Everything this replica holds of one input partition, and of the tracking partition
    of the same number, but its jobs (the job table keeps those)."""

    stage: Stage
    restore: asyncio.Task[None] | None = None
    # Calls started for its jobs; each leaves the set when done.
    calls: set[asyncio.Task[None]] = field(default_factory=set)
    # The input offset last committed; None until committed or read from the group.
    committed: int | None = None
    # Input offsets dead-lettered since the last commit: a batch tried again after a Kafka
    # error does not write their dead letters a second time.
    dead_lettered: set[int] = field(default_factory=set)
    # The highest tracking offset seen (read or written) + 1: on a re-assignment, a higher
    # end offset means someone else wrote meanwhile, and the table of it is stale.
    tracking_end: int = 0
    # Per vendor, the vendor's id of each followed pair -> its order id (webhooks name
    # only theirs).
    refs: dict[Vendor, dict[str, str]] = field(default_factory=dict)


class PartitionListener(Protocol):
    """Who acts on a partition's moves (the scheduler)."""

    async def partition_opened(self, partition: int, jobs: list[Job]) -> None: ...

    def partitions_closing(self, partitions: set[int]) -> None: ...

    def share_taken(self, owned: int, total: int) -> None: ...


class PartitionOwner:
    """The one owner of the partitions' lives, and of what is kept per partition."""

    def __init__(self, table: JobTable, tracking: TrackingReader, metrics: Metrics, *,
                 critical: CriticalTasks | None = None, session_timeout_s: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self._tracking = tracking
        self._metrics = metrics
        self._critical = critical or CriticalTasks()
        self._owned: dict[int, OwnedPartition] = {}
        self._listeners: list[PartitionListener] = []
        # A process that stood still (frozen, starved) as long as its group session lasts
        # has been counted out of the group: its partitions may be another replica's now,
        # though nothing has told it yet. `tick` (housekeeping, every second) and
        # `ownership_in_doubt` see such a gap; until the group assigns again, nothing of it
        # may create a vendor order (another owner may be creating the same one).
        self._session_timeout_s = session_timeout_s
        self._monotonic = monotonic
        self._last_tick = monotonic()
        self._doubt_since: float | None = None

    def listen(self, listener: PartitionListener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------------ questions

    def owned(self) -> set[int]:
        """Every partition of the current assignment, whatever its stage."""
        return set(self._owned)

    def restored(self) -> set[int]:
        """Owned partitions whose tracking state is in the job table."""
        return {p for p, o in self._owned.items() if o.stage is not Stage.RESTORING}

    def restoring(self) -> list[int]:
        return sorted(p for p, o in self._owned.items() if o.stage is Stage.RESTORING)

    def is_open(self, partition: int) -> bool:
        owned = self._owned.get(partition)
        return owned is not None and owned.stage is Stage.OPEN

    def is_restored(self, partition: int) -> bool:
        owned = self._owned.get(partition)
        return owned is not None and owned.stage is not Stage.RESTORING

    def open_partitions(self) -> list[int]:
        return sorted(p for p, o in self._owned.items() if o.stage is Stage.OPEN)

    def restore_tasks(self) -> list[asyncio.Task[None]]:
        tasks = (o.restore for o in self._owned.values() if o.restore is not None)
        return list({id(t): t for t in tasks}.values())

    def calls_running(self) -> int:
        return sum(len(o.calls) for o in self._owned.values())

    def current(self, job: Job) -> bool:
        """Whether `job` is its pair's current state in an open partition: what a due-queue
        entry must be to run."""
        return self.is_open(job.partition) and self.table.get(job.partition, job.key) is job

    # ------------------------------------------------------------------ a process that stood still

    def tick(self) -> None:
        """The process is running now (called about once a second)."""
        self.ownership_in_doubt()
        self._last_tick = self._monotonic()

    def ownership_in_doubt(self) -> bool:
        """Whether this process stood still long enough to have been counted out of its
        group since the last assignment (then no vendor order may be created here until the
        group assigns again; after three session timeouts without one, the membership
        evidently held)."""
        now = self._monotonic()
        if now - self._last_tick >= self._session_timeout_s and self._doubt_since is None:
            self._doubt_since = now
            log.warning("the process stood still for as long as its group session: creating "
                        "nothing until the group assigns partitions again",
                        stood_still_s=round(now - self._last_tick, 1))
        if self._doubt_since is not None and now - self._doubt_since >= 3 * self._session_timeout_s:
            self._doubt_since = None
        return self._doubt_since is not None

    # ------------------------------------------------------------------ what is kept per partition

    def committed(self, partition: int) -> int | None:
        owned = self._owned.get(partition)
        return None if owned is None else owned.committed

    def committed_offsets(self) -> dict[int, int]:
        return {p: o.committed for p, o in sorted(self._owned.items()) if o.committed is not None}

    def note_committed(self, partition: int, offset: int, *, by_us: bool = True) -> None:
        """Committed up to `offset` (`by_us`: by this intake, so those records are never
        read again by this process; else as the group said, for the lag gauge)."""
        owned = self._owned.get(partition)
        if owned is not None:
            owned.committed = offset
            if by_us:
                owned.dead_lettered.clear()

    def dead_lettered(self, partition: int) -> set[int]:
        owned = self._owned.get(partition)
        return set() if owned is None else owned.dead_lettered

    def note_tracking_offset(self, partition: int, offset: int) -> None:
        """A tracking record of the partition was written (or read) at `offset`."""
        owned = self._owned.get(partition)
        if owned is not None and offset + 1 > owned.tracking_end:
            owned.tracking_end = offset + 1

    def index(self, job: Job) -> None:
        """Keep the pair's vendor reference findable (or not, once it is finished)."""
        owned = self._owned.get(job.partition)
        if owned is None or job.vendor_order_ref is None:
            return
        refs = owned.refs.setdefault(job.vendor, {})
        if job.phase is Phase.DONE:
            refs.pop(job.vendor_order_ref, None)
        elif job.phase is not Phase.SUBMIT:
            refs[job.vendor_order_ref] = job.order_id

    def order_of(self, vendor: Vendor, vendor_order_ref: str) -> str | None:
        """The order id of the pair this replica follows by the vendor's reference."""
        for owned in self._owned.values():
            if owned.stage is Stage.OPEN:
                order_id = owned.refs.get(vendor, {}).get(vendor_order_ref)
                if order_id is not None:
                    return order_id
        return None

    def add_call(self, partition: int, task: asyncio.Task[None]) -> None:
        """A call started for one of the partition's jobs; it leaves the count when done."""
        owned = self._owned.get(partition)
        if owned is not None:
            owned.calls.add(task)
            task.add_done_callback(owned.calls.discard)

    # ------------------------------------------------------------------ rebalance decisions

    async def assigned(self, partitions: set[int], total: int, gate: InputGate) -> list[int]:
        """A new assignment: partitions no longer ours are forgotten; a kept one is opened
        again, unless someone else wrote its tracking partition meanwhile (after a session
        timeout, say: then our table of it is stale and it is restored afresh); the rest are
        restored in the background, their input paused until their jobs are known. Returns
        the partitions being restored."""
        self._doubt_since = None  # the group has spoken: what is assigned is ours
        for gone in self.owned() - partitions:
            self.forget(gone)
        kept = self.owned() & partitions
        if kept:
            try:
                ends = await self._tracking.end_offsets(kept)
            except KafkaError:
                ends = {p: -1 for p in kept}
            for partition in kept:
                if ends.get(partition) != self._owned[partition].tracking_end:
                    log.info("tracking written by another owner meanwhile, restoring again",
                             partition=partition)
                    self.forget(partition)
        for partition in sorted(partitions):
            owned = self._owned.get(partition)
            if owned is not None and owned.stage is not Stage.RESTORING:
                await self._open(partition)
        to_restore = sorted(p for p in partitions if p not in self._owned)
        if to_restore:
            # Paused before any fetch: no record of these partitions is read before their
            # jobs are known. Restoring runs in the background, so a long history never
            # stalls the group's heartbeat or the health endpoint.
            gate.pause_input(to_restore)
            task = self._critical.spawn(self._restore(to_restore, gate), name="restore")
            for partition in to_restore:
                self._owned[partition] = OwnedPartition(Stage.RESTORING, restore=task)
        self._metrics.partitions_owned.set(len(partitions))
        self._metrics.partitions_restored.set(len(self.restored()))
        for listener in self._listeners:
            listener.share_taken(len(partitions), total)
        return to_restore

    async def close(self, partitions: Iterable[int], timeout_s: float) -> None:
        """Revoked (or stopping): nothing of these starts any more; wait for their running
        calls, at most `timeout_s`; calls still running then are cancelled (their jobs'
        records are unchanged, so the next owner repeats them, asking the vendor before
        creating). They stay owned until the next assignment says."""
        closing = {p for p in partitions if p in self._owned}
        running: list[asyncio.Task[None]] = []
        for partition in closing:
            owned = self._owned[partition]
            if owned.stage is Stage.OPEN:
                owned.stage = Stage.CLOSING
            running.extend(owned.calls)
        for listener in self._listeners:
            listener.partitions_closing(closing)
        if running:
            _, late = await asyncio.wait(running, timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                log.warning("cancelled calls still running at hand-over", count=len(late))
                await asyncio.gather(*late, return_exceptions=True)

    def forget(self, partition: int) -> None:
        """No longer ours (or our state of it is stale): everything kept of it goes. A
        restore that reads only this partition is cancelled."""
        owned = self._owned.pop(partition, None)
        self.table.drop_partition(partition)
        for listener in self._listeners:
            listener.partitions_closing({partition})
        with contextlib.suppress(KeyError):
            self._metrics.consumer_lag.remove(str(partition))
        if owned is not None and owned.restore is not None and not any(
                o.restore is owned.restore for o in self._owned.values()):
            owned.restore.cancel()

    async def _open(self, partition: int) -> None:
        """Restored, or kept across a rebalance: its jobs may run."""
        owned = self._owned[partition]
        owned.stage, owned.restore = Stage.OPEN, None
        jobs = self.table.active_jobs(partition)
        owned.refs.clear()
        for count, job in enumerate(jobs, 1):
            self.index(job)
            if count % OPEN_CHUNK == 0:
                await asyncio.sleep(0)  # /healthz answers while a million jobs are indexed
        for listener in self._listeners:
            await listener.partition_opened(partition, jobs)

    async def _restore(self, partitions: list[int], gate: InputGate) -> None:
        restored = await retry_kafka(lambda: self._tracking.restore(partitions),
                                     what="restoring tracking state", label="restore",
                                     metrics=self._metrics)
        for read in restored or ():
            owned = self._owned.get(read.partition)
            if owned is None or owned.stage is not Stage.RESTORING:
                continue  # revoked while it was read: nothing to keep
            self.table.add_partition(read.partition, read.finished, read.active, read.quiet)
            owned.tracking_end = read.end_offset
            await self._open(read.partition)
            log.info("tracking restored", partition=read.partition, records=read.records_read,
                     active=len(read.active), finished=len(read.finished))
        gate.resume_input([p for p in partitions if self.is_restored(p)])
        self._metrics.partitions_restored.set(len(self.restored()))

