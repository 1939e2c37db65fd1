"""Jobs, the tracking record they are stored as, the job table and the due-time queue.

One job per (order, vendor) pair. Its whole state is one record of the compacted tracking
topic (key `vendor/order_id`), so the table can be rebuilt from the topic after any crash.
Pure logic, no I/O: the Kafka side lives in `tracking.py`.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections.abc import Iterator
from dataclasses import InitVar, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from orderflow.contracts.events import Order, Vendor, VendorStatus

RECORD_VERSION = 1


class Phase(StrEnum):
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


_VENDOR_NAMES = frozenset(str(v) for v in Vendor)
_PHASE_NAMES = frozenset(str(p) for p in Phase)


@dataclass(slots=True)
class Job:
    """One pair's state. An active job keeps its order as JSON (`order_json`, ~1 KB for a
    typical order) and builds the `Order` model only for the run that needs it
    (`read_order`): a model costs about six times its JSON in memory (~6.8 KB), and a
    replica holds every active job of its partitions for as long as the vendor works.

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
    version: int = field(default=0, compare=False)  # in-memory: drops stale queue entries
    # The key, built once: the table and the due queue share this one tuple.
    _key: JobKey | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self, order: Order | None) -> None:
        if order is not None:
            # Without its nulls: every optional field of the model defaults to None, so this
            # reads back the same, at about half the size for a many-lined order (a 500-line
            # order of 35 KB was 65 KB with them, and the record must fit the brokers).
            self.order_json = order.model_dump_json(exclude_none=True).encode()

    @property
    def key(self) -> JobKey:
        if self._key is None:
            self._key = (self.order_id, self.vendor)
        return self._key

    def read_order(self) -> Order:
        """The order as a model, built from its JSON: hold it for one run, not longer.
        ValueError when the job has no order or its JSON does not validate."""
        if self.order_json is None:
            raise ValueError("the job holds no order")
        return Order.model_validate_json(self.order_json)

    def to_record(self) -> bytes:
        head = json.dumps(
            {
                "v": RECORD_VERSION,
                "order_id": self.order_id,
                "vendor": str(self.vendor),
                "source_event_id": self.source_event_id,
                "phase": str(self.phase),
                "status": None if self.status is None else str(self.status),
                "vendor_order_ref": self.vendor_order_ref,
                "vendor_state": self.vendor_state,
                "created_at": self.created_at,
                "due_at": self.due_at,
                "attempts": self.attempts,
                "polls_without_change": self.polls_without_change,
                "finished_at": self.finished_at,
                "intent_at": self.intent_at,
                # Only once re-opened: the records of every other pair stay as they were.
                **({"round": self.round} if self.round else {}),
                **({"view": True} if self.order_view else {}),
            },
            separators=(",", ":"),
        ).encode()
        # The order's JSON goes in as it is held, as the record's last member: the record
        # stays what it always was, and the order is neither decoded nor encoded again.
        order = b"null" if self.order_json is None else self.order_json
        return b"".join((head[:-1], b',"order":', order, b"}"))

    @classmethod
    def from_record(cls, raw: bytes, partition: int) -> Job:
        """The job a record holds. Its order is kept as JSON, not validated: that happens
        when the job runs (`read_order`). ValueError for anything that is not a record as
        this release writes it (`record_head`)."""
        data = record_head(_json_object(raw))
        order = data.get("order")
        return cls(
            order_id=data["order_id"],
            vendor=Vendor(data["vendor"]),
            partition=partition,
            source_event_id=data["source_event_id"],
            order_json=None if order is None else _compact_json(order),
            phase=Phase(data["phase"]),
            status=None if data.get("status") is None else VendorStatus(data["status"]),
            vendor_order_ref=data.get("vendor_order_ref"),
            # One string object per state word, not one per job: a million waiting jobs share them.
            vendor_state=_shared(data.get("vendor_state")),
            created_at=float(data["created_at"]),
            due_at=float(data["due_at"]),
            attempts=data.get("attempts", 0),
            polls_without_change=data.get("polls_without_change", 0),
            finished_at=_optional_float(data.get("finished_at")),
            # A record from before intents were recorded says nothing either way: take it
            # that a create may have happened, so the vendor is asked first, as it always was.
            intent_at=(_optional_float(data["intent_at"]) if "intent_at" in data
                       else float(data["created_at"])),
            round=data.get("round", 0),
            order_view=data.get("view", False),
        )


# What a tracking record's head may hold, field by field. A record is read from a topic that
# anything with produce rights can write (a migration script, a tool, another release), and a
# value of the wrong type once stopped every replica: an object as `vendor_order_ref` raised
# TypeError in an index, `attempts: 1e999` OverflowError. So each field is checked here, where
# it is read, and a record that fails is skipped, never half-read.
_MAX_TEXT = 1_024          # ids and state words; ours are far shorter
_MAX_COUNT = 1 << 31       # attempts, polls, rounds
_MAX_TIME = 1e11           # epoch seconds (year 5138): finite, and a float without surprises
_STATUS_NAMES = frozenset(str(s) for s in VendorStatus)


def _text(data: dict[str, Any], name: str, *, required: bool) -> None:
    value = data.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
        raise ValueError(f"{name} is not a string of 1 to {_MAX_TEXT} characters")


def _time(data: dict[str, Any], name: str, *, required: bool) -> None:
    value = data.get(name)
    if value is None and not required:
        return
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not -_MAX_TIME <= value <= _MAX_TIME):  # NaN fails both comparisons
        raise ValueError(f"{name} is not a time (epoch seconds)")


def _count(data: dict[str, Any], name: str) -> None:
    value = data.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
        raise ValueError(f"{name} is not a count")


def record_head(data: Any) -> dict[str, Any]:
    """`data` as a tracking record's decoded JSON, each field checked for what this release
    writes there; ValueError naming the first field that is not."""
    if not isinstance(data, dict):
        raise ValueError(f"unreadable tracking record (not an object but {type(data).__name__})")
    if data.get("v") != RECORD_VERSION or isinstance(data.get("v"), bool):
        raise ValueError(f"unknown tracking record version {str(data.get('v'))[:40]!r}")
    if data.get("vendor") not in _VENDOR_NAMES:
        raise ValueError(f"unknown vendor {str(data.get('vendor'))[:40]!r}")
    if data.get("phase") not in _PHASE_NAMES:
        raise ValueError(f"unknown phase {str(data.get('phase'))[:40]!r}")
    if data.get("status") is not None and data.get("status") not in _STATUS_NAMES:
        raise ValueError(f"unknown status {str(data.get('status'))[:40]!r}")
    for name in ("order_id", "source_event_id"):
        _text(data, name, required=True)
    for name in ("vendor_order_ref", "vendor_state"):
        _text(data, name, required=False)
    for name in ("created_at", "due_at"):
        _time(data, name, required=True)
    for name in ("finished_at", "intent_at"):
        _time(data, name, required=False)
    for name in ("attempts", "polls_without_change", "round"):
        _count(data, name)
    if not isinstance(data.get("view", False), bool):
        raise ValueError("view is not true or false")
    order = data.get("order")
    if order is not None and not isinstance(order, dict):
        raise ValueError(f"the record's order is not an object but {type(order).__name__}")
    return data


def _json_object(raw: bytes) -> Any:
    """The record's JSON. Any failure (bad UTF-8, bad JSON, nesting too deep for the parser,
    a number too long to read) is a ValueError."""
    try:
        return json.loads(raw.decode())  # UTF-8 always: spares json its encoding detection
    except ValueError:
        raise
    except Exception as exc:  # RecursionError for deep nesting, among others
        raise ValueError(f"unreadable tracking record ({type(exc).__name__})") from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _shared(word: str | None) -> str | None:
    return sys.intern(word) if word is not None and len(word) <= 40 else word


def _compact_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


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

    def add_partition(self, partition: int, finished: dict[bytes, float] | None = None,
                      active: dict[JobKey, Job] | None = None) -> None:
        """Own a partition. `finished` (tracking key -> finished_at) and `active` (key -> job),
        as a restore builds them, become its indexes as they are, not copied: a million
        restored jobs are adopted at once, not put one by one with the loop standing still."""
        _adopt(self._active, partition, active)
        _adopt(self._finished, partition, finished)

    def drop_partition(self, partition: int) -> list[Job]:
        self._finished.pop(partition, None)
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
        if job.phase is Phase.DONE:
            active.pop(job.key, None)
            self._finished[job.partition][tracking_key(job.key)] = job.finished_at or 0.0
        else:
            active[job.key] = job

    def reopen(self, job: Job) -> None:
        """A finished pair made active again (`orderflow retry`)."""
        self._finished.get(job.partition, {}).pop(tracking_key(job.key), None)
        self.put(job)

    def finished_at(self, partition: int, key: JobKey) -> float | None:
        """When the pair finished, if this table holds it as finished."""
        return self._finished.get(partition, {}).get(tracking_key(key))

    def forget(self, partition: int, key: JobKey) -> None:
        self._active.get(partition, {}).pop(key, None)
        self._finished.get(partition, {}).pop(tracking_key(key), None)

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


def finished_at_of(key: bytes, value: bytes) -> float | None:
    """When the pair of this tracking record finished, or None if it has not. Raises
    ValueError for a record that cannot be read or names another pair than its key.

    Reads the JSON and checks its head, but builds no Job and no Order: the cheap way
    through the finished pairs that are most of a long history."""
    data = record_head(_json_object(value))
    if f"{data['vendor']}/{data['order_id']}".encode() != key:
        raise ValueError("the record names another pair than its key")
    if data["phase"] != Phase.DONE:
        return None
    return float(data.get("finished_at") or 0.0)


def read_tracking_record(key: bytes, value: bytes, partition: int) -> Job:
    """The job a tracking record holds; ValueError when it cannot be read or names another
    pair than its key. Whatever the bytes, nothing else is raised."""
    try:
        job = Job.from_record(value, partition)
    except ValueError:
        raise
    except Exception as exc:  # a record this release does not write: never a crash
        raise ValueError(f"unreadable tracking record ({type(exc).__name__}: {exc})"[:300]
                         ) from None
    if tracking_key(job.key) != key:
        raise ValueError("the record names another pair than its key")
    return job


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    key: bytes
    reason: str
    # The record's offset; None for an unfinished pair's latest record, which is decoded
    # whole only once the partition's end is reached (its head was checked when read).
    offset: int | None = None


class TrackingReplay:
    """One tracking partition read from its start, record by record in offset order, reduced
    as it goes to what the job table keeps (the latest record of a key wins; a tombstone
    forgets the pair):

    - a finished pair becomes tracking key -> finished_at at once, without a Job;
    - an unfinished pair keeps only its latest raw record, decoded into a Job (its order
      kept as JSON, validated only when the job runs) once the end is reached, so an
      earlier version that a later one supersedes is never decoded;
    - a record that cannot be read is reported and forgets its pair, as the record that
      should say the pair's state is lost.

    Memory follows the size of the table, never of the history read."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.records = 0
        self.finished: dict[bytes, float] = {}
        self._unfinished: dict[bytes, bytes] = {}

    @property
    def unfinished(self) -> int:
        return len(self._unfinished)

    def apply(self, key: bytes | None, value: bytes | None,
              offset: int | None = None) -> SkippedRecord | None:
        """Take the next record of the partition; returns what was skipped, if it was."""
        self.records += 1
        if key is None:
            return None  # not a tracking record: orderflow always writes a key
        if value is None:
            self.finished.pop(key, None)
            self._unfinished.pop(key, None)
            return None
        try:
            finished_at = finished_at_of(key, value)
        except Exception as exc:  # whatever the bytes: the partition goes on
            self.finished.pop(key, None)
            self._unfinished.pop(key, None)
            return SkippedRecord(key, str(exc)[:300], offset)
        if finished_at is None:
            self.finished.pop(key, None)
            self._unfinished[key] = value
        else:
            self._unfinished.pop(key, None)
            self.finished[key] = finished_at
        return None

    def unfinished_jobs(self) -> Iterator[Job | SkippedRecord]:
        """Decode the unfinished pairs' latest records, releasing each raw record as it goes.
        Call once the partition's end is reached."""
        while self._unfinished:
            key, value = self._unfinished.popitem()
            try:
                yield read_tracking_record(key, value, self.partition)
            except ValueError as exc:
                yield SkippedRecord(key, str(exc)[:300])


class DueQueue:
    """A min-heap of due times. Entries carry the job's version at scheduling time, so a
    job rescheduled or removed leaves only a stale entry that `pop_due` skips: no searching,
    no per-job timer task, and a million waiting jobs cost one small tuple each."""

    def __init__(self) -> None:
        # Ties in due time go by partition and key: no sequence number to keep per entry.
        self._heap: list[tuple[float, int, JobKey, int]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, job: Job) -> None:
        heapq.heappush(self._heap, (job.due_at, job.partition, job.key, job.version))

    def push_many(self, jobs: list[Job]) -> None:
        """Many at once (a restored partition): one heapify, O(n), instead of n pushes."""
        self._heap.extend((job.due_at, job.partition, job.key, job.version) for job in jobs)
        heapq.heapify(self._heap)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[int, JobKey, int] | None:
        """The earliest entry whose due time has come: (partition, key, version)."""
        if self._heap and self._heap[0][0] <= now:
            _, partition, key, version = heapq.heappop(self._heap)
            return partition, key, version
        return None
