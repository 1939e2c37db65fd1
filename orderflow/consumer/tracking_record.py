"""The tracking record: a job's whole state as one record of the compacted tracking topic
(key `vendor/order_id`, value JSON), written by `encode_job` and read back, field by field
checked, by `decode_job`, `finished_at_of` and the restore's `TrackingReplay`.

The wire format lives here and nowhere else. Pure logic, no I/O: the Kafka side lives in
`tracking.py`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orderflow.consumer.jobs import Job, Phase, tracking_key
from orderflow.contracts.events import Vendor, VendorStatus

RECORD_VERSION = 1

_VENDOR_NAMES = frozenset(str(v) for v in Vendor)
_PHASE_NAMES = frozenset(str(p) for p in Phase)


def encode_job(job: Job) -> bytes:
    """The job as its tracking record (JSON; the value of key `vendor/order_id`)."""
    head = json.dumps(
        {
            "v": RECORD_VERSION,
            "order_id": job.order_id,
            "vendor": str(job.vendor),
            "source_event_id": job.source_event_id,
            "phase": str(job.phase),
            "status": None if job.status is None else str(job.status),
            "vendor_order_ref": job.vendor_order_ref,
            "vendor_state": job.vendor_state,
            "created_at": job.created_at,
            "due_at": job.due_at,
            "attempts": job.attempts,
            "polls_without_change": job.polls_without_change,
            "finished_at": job.finished_at,
            "intent_at": job.intent_at,
            # Only once re-opened: the records of every other pair stay as they were.
            **({"round": job.round} if job.round else {}),
            **({"view": True} if job.order_view else {}),
            **({"waits_for": str(job.waits_for)} if job.waits_for is not None else {}),
            **({"fulfilled_at": job.fulfilled_at} if job.fulfilled_at is not None else {}),
            **({"media": dict(job.media)} if job.media else {}),
            **({"numbers": list(job.announced_numbers)} if job.announced_numbers else {}),
            **({"trace": job.trace} if job.trace is not None else {}),
            **({"cancel": {"id": job.cancel_id, "reason": job.cancel_reason,
                           "owed": job.cancelling}} if job.cancel_id is not None else {}),
        },
        separators=(",", ":"),
    ).encode()
    # The order's JSON goes in as it is held, as the record's last member: the record
    # stays what it always was, and the order is neither decoded nor encoded again.
    order = b"null" if job.order_json is None else job.order_json
    return b"".join((head[:-1], b',"order":', order, b"}"))


def decode_job(raw: bytes, partition: int) -> Job:
    """The job a record holds. Its order is kept as JSON, not validated: that happens
    when the job runs (`Job.read_order`). ValueError for anything that is not a record as
    this release writes it (`record_head`)."""
    data = record_head(_json_object(raw))
    order = data.get("order")
    return Job(
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
        waits_for=None if data.get("waits_for") is None else Vendor(data["waits_for"]),
        fulfilled_at=_optional_float(data.get("fulfilled_at")),
        media=tuple((data.get("media") or {}).items()),
        announced_numbers=tuple(data.get("numbers") or ()),
        trace=data.get("trace"),
        cancel_id=(data.get("cancel") or {}).get("id"),
        cancel_reason=(data.get("cancel") or {}).get("reason"),
        cancelling=bool((data.get("cancel") or {}).get("owed", False)),
    )


# What a tracking record's head may hold, field by field. A record is read from a topic that
# anything with produce rights can write (a migration script, a tool, another release), and a
# value of the wrong type once stopped every replica: an object as `vendor_order_ref` raised
# TypeError in an index, `attempts: 1e999` OverflowError. So each field is checked here, where
# it is read, and a record that fails is skipped, never half-read.
_MAX_TEXT = 1_024          # ids and state words; ours are far shorter
_MAX_COUNT = 1 << 31       # attempts, polls, rounds
_MAX_MEDIA_ID = 1 << 63    # a vendor's media id, an integer
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
    for name in ("vendor_order_ref", "vendor_state", "trace"):
        _text(data, name, required=False)
    for name in ("created_at", "due_at"):
        _time(data, name, required=True)
    for name in ("finished_at", "intent_at", "fulfilled_at"):
        _time(data, name, required=False)
    if data.get("waits_for") is not None and data.get("waits_for") not in _VENDOR_NAMES:
        raise ValueError(f"unknown vendor waited for {str(data.get('waits_for'))[:40]!r}")
    numbers = data.get("numbers", [])
    if not isinstance(numbers, list) or len(numbers) > 50 or not all(
            isinstance(n, str) and 0 < len(n) <= _MAX_TEXT for n in numbers):
        raise ValueError("numbers is not a list of tracking numbers")
    media = data.get("media", {})
    if not isinstance(media, dict) or len(media) > 500 or not all(
            isinstance(k, str) and 0 < len(k) <= _MAX_TEXT and isinstance(v, int)
            and not isinstance(v, bool) and 0 < v < _MAX_MEDIA_ID for k, v in media.items()):
        raise ValueError("media is not line ids to media ids")
    cancel = data.get("cancel")
    if cancel is not None:
        if not isinstance(cancel, dict):
            raise ValueError("cancel is not an object")
        try:
            _text(cancel, "id", required=True)
        except ValueError as exc:
            raise ValueError(f"cancel {exc}") from None
        reason = cancel.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_TEXT):
            raise ValueError(f"cancel reason is not a string of at most {_MAX_TEXT} characters")
        if not isinstance(cancel.get("owed", False), bool):
            raise ValueError("cancel owed is not true or false")
    if (data.get("phase") == Phase.WAIT) != (data.get("waits_for") is not None):
        raise ValueError("a waiting pair names the pair it waits for, and only a waiting one")
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



def finished_at_of(key: bytes, value: bytes) -> float | None:
    """When the pair of this tracking record finished, or None if it has not. Raises
    ValueError for a record that cannot be read or names another pair than its key."""
    finished = finished_of(key, value)
    return None if finished is None else finished[0]


def finished_of(key: bytes, value: bytes) -> tuple[float, bool] | None:
    """When the pair of this tracking record finished, and whether a cancellation of its
    order owes it nothing (it did not complete, or its cancellation was answered already);
    None if it has not finished. Raises ValueError for a record that cannot be read or
    names another pair than its key.

    Reads the JSON and checks its head, but builds no Job and no Order: the cheap way
    through the finished pairs that are most of a long history."""
    data = record_head(_json_object(value))
    if f"{data['vendor']}/{data['order_id']}".encode() != key:
        raise ValueError("the record names another pair than its key")
    if data["phase"] != Phase.DONE:
        return None
    quiet = data.get("status") != VendorStatus.COMPLETED or data.get("cancel") is not None
    return float(data.get("finished_at") or 0.0), quiet


def read_tracking_record(key: bytes, value: bytes, partition: int) -> Job:
    """The job a tracking record holds; ValueError when it cannot be read or names another
    pair than its key. Whatever the bytes, nothing else is raised."""
    try:
        job = decode_job(value, partition)
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
    """A tracking record this release cannot read, and why."""

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
        # Finished pairs a cancellation owes nothing (see JobTable): few, most pairs complete.
        self.quiet: set[bytes] = set()
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
        self.quiet.discard(key)
        if value is None:
            self.finished.pop(key, None)
            self._unfinished.pop(key, None)
            return None
        try:
            finished = finished_of(key, value)
        except Exception as exc:  # whatever the bytes: the partition goes on
            self.finished.pop(key, None)
            self._unfinished.pop(key, None)
            return SkippedRecord(key, str(exc)[:300], offset)
        if finished is None:
            self.finished.pop(key, None)
            self._unfinished[key] = value
        else:
            self._unfinished.pop(key, None)
            self.finished[key] = finished[0]
            if finished[1]:
                self.quiet.add(key)
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

