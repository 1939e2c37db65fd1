"""The control topic (`topics.control`, default `orderflow.control`): what operator commands
and webhook deliveries tell the running replicas, as records that outlive any replica.

One partition, compacted, read whole by every replica from its beginning (not through the
consumer group). Why not one partition per input partition, like the tracking topic: a
command or a webhook names an order (or only Smake's id for it), and which input partition
holds an order depends on upstream's partitioner, which nothing may assume; a pause is for
every replica anyway. The volume is small (commands are rare, webhooks are one per state
change), and compaction keeps only the latest record of each key:

| key | record | who writes | who acts |
|---|---|---|---|
| `pause/<vendor>` | `Pause` | `orderflow pause` / `resume` | every replica |
| `retry/<vendor>/<order_id>` | `Retry` | `orderflow retry` | the replica owning the pair |
| `hint/<vendor>/<delivery digest>` | `Hint` | the webhook endpoint of any replica | the owner |
| `replayed/<topic>/<partition>/<offset>` | `Replayed` | `orderflow dlq replay` | nobody: a marker |
| `replica/<replica id>` | `ReplicaStatus` | each replica, every 30 s | `orderflow status` |
| `cancel/<order_id>` | `Cancel` | the intake reading an `order.cancelled` | each owner of the order's pairs |

A cancellation goes through here because the `order.cancelled` may come on another input
partition than its order (another partitioner upstream), before it, or after it: every
replica keeps every cancellation it read (one small record per cancelled order) and applies
it to the order's pairs it owns, now or when the order or its partition comes. The first
cancellation of an order is the one applied; it is removed after the retention of finished
pairs (`ORDERFLOW_TRACKING__TERMINAL_RETENTION_S`), as a pair's record is.

A retry carries the finished state it re-opens (`finished_at`), so reading it again after a
restart, or giving the same command twice, re-opens nothing more.

A hint's key is the digest of the delivery it came from (older releases keyed it by the
vendor's id): the same delivery makes the same key on every replica, and every replica
reads every key, tombstones included, so a delivery already noted anywhere is known as such.
Hints are removed once served, or after `HINT_MAX_AGE_S` when nobody serves them; replay
markers once the dead-letter topic no longer holds the letter they stand for.

Anything may be written to this topic by anything with produce rights: a record is read as
this release writes it or not at all (`parse` raises ValueError, whatever the bytes), and
each field is bounded (strings by length, times finite).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from orderflow.contracts.events import Vendor

# A hint older than this when read is not acted on: the pair has been polled since (the
# poll interval is the safety net), or its owner restored it and polls it at once anyway.
# Hints nobody served are removed once this old.
HINT_MAX_AGE_S = 300.0

_TEXT = 1_024  # ids, handles, topic names: ours are far shorter
_TIME = 1e11   # epoch seconds, year 5138


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)
    at: float = Field(ge=0, le=_TIME, description="Unix time the record was written.")


class Pause(_Record):
    kind: Literal["pause"] = "pause"
    vendor: Vendor
    paused: bool
    note: str | None = Field(default=None, max_length=500)

    def key(self) -> bytes:
        return pause_key(self.vendor)


class Retry(_Record):
    kind: Literal["retry"] = "retry"
    vendor: Vendor
    order_id: str = Field(min_length=1, max_length=_TEXT)
    # The finished state re-opened: its tracking record's finished_at. The owner re-opens
    # the pair only while it is still finished at exactly that time.
    finished_at: float = Field(ge=-_TIME, le=_TIME)
    round: int = Field(default=0, ge=0, lt=1 << 31,
                       description="The round of the finished state re-opened.")
    source_event_id: str = Field(min_length=1, max_length=_TEXT)
    order: dict[str, object] | None = Field(
        default=None, description="The order as its tracking record holds it.")
    # The vendor had accepted the order: the record keeps only what polls read, and the
    # pair is re-opened to be followed again (by this reference), not submitted.
    order_view: bool = False
    vendor_order_ref: str | None = Field(default=None, min_length=1, max_length=_TEXT)

    def key(self) -> bytes:
        return retry_key(self.vendor, self.order_id)


class Hint(_Record):
    """A vendor said something changed: the owner of the pair looks now. Never trusted for
    the state itself, which is always read from the vendor."""

    kind: Literal["hint"] = "hint"
    vendor: Vendor
    # The vendor's id of the order
    vendor_order_ref: str | None = Field(default=None, min_length=1, max_length=_TEXT)
    # Ours, when the delivery names it
    order_id: str | None = Field(default=None, min_length=1, max_length=_TEXT)
    event: str | None = Field(default=None, max_length=200)
    # The delivery's digest (hex SHA-256 of its body, first 32 characters): its key.
    delivery: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")

    def key(self) -> bytes:
        if self.delivery is not None:
            return hint_key(self.vendor, self.delivery)
        return f"hint/{self.vendor}/{self.vendor_order_ref or '=' + (self.order_id or '')}".encode()


class Replayed(_Record):
    kind: Literal["replayed"] = "replayed"
    topic: str = Field(min_length=1, max_length=_TEXT)
    partition: int = Field(ge=0, lt=1 << 31)
    offset: int = Field(ge=0, lt=1 << 63)
    to_topic: str = Field(min_length=1, max_length=_TEXT)
    to_partition: int | None = Field(default=None, ge=0, lt=1 << 31)
    to_offset: int | None = Field(default=None, ge=0, lt=1 << 63)

    def key(self) -> bytes:
        return replayed_key(self.topic, self.partition, self.offset)


class Cancel(_Record):
    """An `order.cancelled` read from the input topic: for every pair of the order."""

    kind: Literal["cancel"] = "cancel"
    order_id: str = Field(min_length=1, max_length=_TEXT)
    event_id: str = Field(min_length=1, max_length=_TEXT)
    reason: str | None = Field(default=None, max_length=500)

    def key(self) -> bytes:
        return cancel_key(self.order_id)


class VendorWork(BaseModel):
    """One vendor's pairs on one replica: waiting for their time (or for another pair),
    due but not started (overdue: the lane is behind, held back or paused), and running."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    waiting: int = Field(default=0, ge=0)
    overdue: int = Field(default=0, ge=0)
    running: int = Field(default=0, ge=0)


class ReplicaStatus(_Record):
    """What one replica says of itself (`orderflow status`): the input partitions it owns,
    which of them have their tracking state restored, and its vendors' pairs."""

    kind: Literal["replica"] = "replica"
    replica: str = Field(min_length=1, max_length=_TEXT)
    host: str = Field(default="", max_length=_TEXT)
    version: str = Field(default="", max_length=200)
    partitions: list[int] = Field(default_factory=list, max_length=100_000)
    restored: list[int] = Field(default_factory=list, max_length=100_000)
    vendors: dict[Vendor, VendorWork] = Field(default_factory=dict)

    def key(self) -> bytes:
        return replica_key(self.replica)


Record = Pause | Retry | Hint | Replayed | Cancel | ReplicaStatus
ControlRecord = Annotated[Record, Field(discriminator="kind")]
_RECORD: TypeAdapter[Record] = TypeAdapter(ControlRecord)


def parse(value: bytes) -> Record:
    """A control record from its bytes; ValueError when it is none, whatever the bytes
    (pydantic's own errors are ValueErrors; anything else its parser raises becomes one)."""
    try:
        return _RECORD.validate_json(value)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"unreadable control record ({type(exc).__name__})") from None


def hint_key(vendor: Vendor | str, delivery: str) -> bytes:
    return f"hint/{vendor}/{delivery}".encode()


def pause_key(vendor: Vendor | str) -> bytes:
    return f"pause/{vendor}".encode()


def retry_key(vendor: Vendor | str, order_id: str) -> bytes:
    return f"retry/{vendor}/{order_id}".encode()


def replica_key(replica: str) -> bytes:
    return f"replica/{replica}".encode()


def cancel_key(order_id: str) -> bytes:
    return f"cancel/{order_id}".encode()


def replayed_key(topic: str, partition: int, offset: int) -> bytes:
    return f"replayed/{topic}/{partition}/{offset}".encode()


# The dead-letter replay header: where the re-published record came from.
REPLAYED_FROM = "orderflow.replayed_from"
