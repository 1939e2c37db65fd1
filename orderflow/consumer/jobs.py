"""Jobs, the job table and the due-time queue.

One job per (order, vendor) pair; its whole state is one record of the compacted tracking
topic (`tracking_record.py` is that record's wire format), so the table can be rebuilt from
the topic after any crash. Pure logic, no I/O: the Kafka side lives in `tracking.py`.
"""

from __future__ import annotations

import heapq
from dataclasses import InitVar, dataclass, field
from enum import StrEnum
from typing import TypeVar

from orderflow.contracts.events import Order, Vendor, VendorStatus


class Phase(StrEnum):
    """Where a pair is in its life."""

    WAIT = "wait"      # waits for another pair of its order (`waits_for`) before it starts
    SUBMIT = "submit"  # the vendor has not (knowingly) accepted the order yet
    POLL = "poll"      # accepted; following the vendor's work
    TRACKING = "tracking"  # completed (announced), waiting for tracking numbers to appear
    DONE = "done"      # a terminal status was announced, and nothing more is awaited


JobKey = tuple[str, Vendor]  # (order_id, vendor)


def tracking_key(key: JobKey) -> bytes:
    order_id, vendor = key
    return f"{vendor}/{order_id}".encode()


def parse_tracking_key(raw: bytes) -> JobKey:
    vendor, _, order_id = raw.decode().partition("/")
    return order_id, Vendor(vendor)



@dataclass(frozen=True, slots=True)
class Job:
    """One pair's state, immutable: every change is a new Job (`dataclasses.replace`), so
    the one in the table is the current state and any other one is stale.

    An active job keeps its order as JSON (`order_json`, ~1 KB for a typical order) and
    builds the `Order` model only for the run that needs it (`read_order`): a model costs
    about six times its JSON in memory (~6.8 KB), and a replica holds every active job of
    its partitions for as long as the vendor works.

    `Job(..., order=order)` takes the model and keeps its JSON: `order` is a constructor
    argument only, not an attribute to read."""

    order_id: str
    vendor: Vendor
    partition: int
    source_event_id: str
    order: InitVar[Order | None] = None
    order_json: bytes | None = None  # the order as JSON; None once DONE (only the key is needed)
    phase: Phase = Phase.SUBMIT
    status: VendorStatus | None = None  # the last status announced
    vendor_order_ref: str | None = None
    vendor_state: str | None = None
    created_at: float = 0.0        # epoch seconds; the polling deadline counts from here
    due_at: float = 0.0
    attempts: int = 0              # consecutive transient failures
    polls_without_change: int = 0
    # When the pair finished; while TRACKING, when its terminal status was announced.
    finished_at: float | None = None
    # When the intent to create the pair at the vendor was last recorded (written before
    # every create call): a submit with an intent asks the vendor first, one without does
    # not need to (nobody can have created it).
    intent_at: float | None = None
    # How many times an operator re-opened the finished pair (`orderflow retry`): the
    # statuses of each round are new events, with ids of their own.
    round: int = 0
    # Once the vendor accepted the order, the job keeps only what its polls read (the
    # adapter's `polling_view`; None: nothing): `order_json` is then that view.
    order_view: bool = False
    # While WAIT: the vendor of the pair of the same order this one waits for.
    waits_for: Vendor | None = None
    # When the pair it waited for completed (the order fulfilled: Reevoo's fulfilment_date).
    fulfilled_at: float | None = None
    # Files uploaded to the vendor for the pair, (order line id, the vendor's media id) each.
    media: tuple[tuple[str, int], ...] = ()
    # While TRACKING: the tracking numbers announced so far (a new set is announced again).
    announced_numbers: tuple[str, ...] = ()
    # The cancellation (`order.cancelled`) applied to the pair, once: its event id and reason;
    # `cancelling` while a cancel call to the vendor is still owed (Smake's PUT .../cancel).
    cancel_id: str | None = None
    cancel_reason: str | None = None
    cancelling: bool = False
    # The W3C traceparent of the span that consumed the pair's order (with tracing on): each
    # later run of the pair is a span of that trace, wherever and whenever it runs.
    trace: str | None = None
    # In memory only: the vendor's message of the last transient failure, for the reason of
    # a `timed_out` (a restart forgets it; the next failure says it again).
    last_error: str | None = field(default=None, compare=False)
    # The key, built once: the table and the due queue share this one tuple.
    key: JobKey = field(init=False, repr=False, compare=False)

    def __post_init__(self, order: Order | None) -> None:
        # Derived fields of a frozen dataclass are set once, here, as dataclasses document.
        object.__setattr__(self, "key", (self.order_id, self.vendor))
        if order is not None:
            # Without its nulls: every optional field of the model defaults to None, so this
            # reads back the same, at about half the size for a many-lined order (a 500-line
            # order of 35 KB was 65 KB with them, and the record must fit the brokers).
            object.__setattr__(self, "order_json",
                               order.model_dump_json(exclude_none=True).encode())

    def __lt__(self, other: Job) -> bool:
        # Two due-queue entries of one pair due at the same moment compare their jobs last:
        # either may go first (the stale one is dropped when popped).
        return False

    def read_order(self) -> Order:
        """The order as a model, built from its JSON: hold it for one run, not longer.
        ValueError when the job has no order or its JSON does not validate."""
        if self.order_json is None:
            raise ValueError("the job holds no order")
        return Order.model_validate_json(self.order_json)


K = TypeVar("K")
V = TypeVar("V")


def _adopt(index: dict[int, dict[K, V]], partition: int, given: dict[K, V] | None) -> None:
    """Make `given` the partition's part of `index` as it is (or add to what is there)."""
    if given is None:
        index.setdefault(partition, {})
    elif partition in index:
        index[partition].update(given)
    else:
        index[partition] = given


class JobTable:
    """The jobs of the partitions this process owns. Active jobs are kept whole (their
    orders as JSON); finished pairs only as tracking key (bytes) -> finished_at, which is
    all that re-delivery de-duplication needs and keeps a large history cheap: about 130
    bytes a pair, and a dict of bytes and floats that the garbage collector never has to
    walk."""

    def __init__(self) -> None:
        self._active: dict[int, dict[JobKey, Job]] = {}
        self._finished: dict[int, dict[bytes, float]] = {}
        # Finished pairs an `order.cancelled` owes nothing: those that did not complete, and
        # those whose cancellation was answered already. A completed pair (most of them)
        # gets one `order.cancellation_refused`; keeping the few others is the cheap side.
        self._quiet: dict[int, set[bytes]] = {}

    def add_partition(self, partition: int, finished: dict[bytes, float] | None = None,
                      active: dict[JobKey, Job] | None = None,
                      quiet: set[bytes] | None = None) -> None:
        """Own a partition. `finished` (tracking key -> finished_at) and `active` (key -> job),
        as a restore builds them, become its indexes as they are, not copied: a million
        restored jobs are adopted at once, not put one by one with the loop standing still."""
        _adopt(self._active, partition, active)
        _adopt(self._finished, partition, finished)
        self._quiet.setdefault(partition, set()).update(quiet or ())

    def drop_partition(self, partition: int) -> list[Job]:
        self._finished.pop(partition, None)
        self._quiet.pop(partition, None)
        return list(self._active.pop(partition, {}).values())

    def partitions(self) -> list[int]:
        return sorted(self._active)

    def knows(self, partition: int, key: JobKey) -> bool:
        return (key in self._active.get(partition, {})
                or tracking_key(key) in self._finished.get(partition, {}))

    def get(self, partition: int, key: JobKey) -> Job | None:
        return self._active.get(partition, {}).get(key)

    def put(self, job: Job) -> None:
        """Record the job's latest state (a finished job moves to the finished index)."""
        active = self._active.get(job.partition)
        if active is None:
            return  # the partition was revoked meanwhile: its new owner has the record
        finished = self._finished[job.partition]
        if job.phase is Phase.DONE:
            active.pop(job.key, None)
            key = tracking_key(job.key)
            finished[key] = job.finished_at or 0.0
            if job.status is not VendorStatus.COMPLETED or job.cancel_id is not None:
                self._quiet[job.partition].add(key)
            else:
                self._quiet[job.partition].discard(key)
        else:
            if job.round and finished:
                finished.pop(tracking_key(job.key), None)  # re-opened (`orderflow retry`)
            active[job.key] = job

    def finished_at(self, partition: int, key: JobKey) -> float | None:
        """When the pair finished, if this table holds it as finished."""
        return self._finished.get(partition, {}).get(tracking_key(key))

    def owes_refusal(self, partition: int, key: JobKey) -> bool:
        """The pair finished `completed` and no cancellation of its order was answered yet:
        a cancellation now gets one `order.cancellation_refused`."""
        raw = tracking_key(key)
        return (raw in self._finished.get(partition, {})
                and raw not in self._quiet.get(partition, set()))

    def note_refused(self, partition: int, key: JobKey) -> None:
        if partition in self._quiet:
            self._quiet[partition].add(tracking_key(key))

    def forget(self, partition: int, key: JobKey) -> None:
        self._active.get(partition, {}).pop(key, None)
        self._finished.get(partition, {}).pop(tracking_key(key), None)
        self._quiet.get(partition, set()).discard(tracking_key(key))

    def active_jobs(self, partition: int) -> list[Job]:
        return list(self._active.get(partition, {}).values())

    def expired_finished(self, partition: int, older_than: float) -> list[JobKey]:
        return [parse_tracking_key(k) for k, t in self._finished.get(partition, {}).items()
                if t < older_than]

    def active_counts(self) -> dict[Vendor, int]:
        """Unfinished jobs per vendor, across the owned partitions."""
        counts: dict[Vendor, int] = {}
        for jobs in self._active.values():
            for job in jobs.values():
                counts[job.vendor] = counts.get(job.vendor, 0) + 1
        return counts

    def counts(self) -> tuple[int, int]:
        return (sum(len(p) for p in self._active.values()),
                sum(len(p) for p in self._finished.values()))


class DueQueue:
    """A min-heap of due times. An entry carries the job as it was scheduled; a job
    rescheduled or finished since is no longer the table's (`JobTable.get(...) is job`), so
    its old entry is skipped when popped: no searching, no per-job timer task, and a
    million waiting jobs cost one small tuple each."""

    def __init__(self) -> None:
        # Ties in due time go by partition and key: no sequence number to keep per entry.
        self._heap: list[tuple[float, int, JobKey, Job]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, job: Job) -> None:
        heapq.heappush(self._heap, (job.due_at, job.partition, job.key, job))

    def push_many(self, jobs: list[Job]) -> None:
        """Many at once (a restored partition): one heapify, O(n), instead of n pushes."""
        self._heap.extend((job.due_at, job.partition, job.key, job) for job in jobs)
        heapq.heapify(self._heap)

    def drop_partition(self, partition: int) -> None:
        """Forget every entry of the partition (it is queued afresh when it opens again)."""
        kept = [entry for entry in self._heap if entry[1] != partition]
        if len(kept) != len(self._heap):
            heapq.heapify(kept)
            self._heap = kept

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Job | None:
        """The job of the earliest entry whose due time has come (perhaps a stale one)."""
        if self._heap and self._heap[0][0] <= now:
            return heapq.heappop(self._heap)[3]
        return None
