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
| `hint/<vendor>/<vendor id>` | `Hint` | the webhook endpoint of any replica | the owner |
| `replayed/<topic>/<partition>/<offset>` | `Replayed` | `orderflow dlq replay` | nobody: a marker |

A retry carries the finished state it re-opens (`finished_at`), so reading it again after a
restart, or giving the same command twice, re-opens nothing more.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from orderflow.contracts.events import Vendor


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    at: float = Field(description="Unix time the record was written.")


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
    order_id: str
    # The finished state re-opened: its tracking record's finished_at. The owner re-opens
    # the pair only while it is still finished at exactly that time.
    finished_at: float
    round: int = Field(default=0, ge=0, description="The round of the finished state re-opened.")
    source_event_id: str
    order: dict[str, object] | None = Field(
        default=None, description="The order as its tracking record holds it.")
    # The vendor had accepted the order: the record keeps only what polls read, and the
    # pair is re-opened to be followed again (by this reference), not submitted.
    order_view: bool = False
    vendor_order_ref: str | None = None

    def key(self) -> bytes:
        return retry_key(self.vendor, self.order_id)


class Hint(_Record):
    """A vendor said something changed: the owner of the pair looks now. Never trusted for
    the state itself, which is always read from the vendor."""

    kind: Literal["hint"] = "hint"
    vendor: Vendor
    vendor_order_ref: str | None = None  # the vendor's id of the order
    order_id: str | None = None          # ours, when the delivery names it
    event: str | None = Field(default=None, max_length=200)

    def key(self) -> bytes:
        return f"hint/{self.vendor}/{self.vendor_order_ref or '=' + (self.order_id or '')}".encode()


class Replayed(_Record):
    kind: Literal["replayed"] = "replayed"
    topic: str
    partition: int
    offset: int
    to_topic: str
    to_partition: int | None = None
    to_offset: int | None = None

    def key(self) -> bytes:
        return replayed_key(self.topic, self.partition, self.offset)


ControlRecord = Annotated[Pause | Retry | Hint | Replayed, Field(discriminator="kind")]
_RECORD: TypeAdapter[Pause | Retry | Hint | Replayed] = TypeAdapter(ControlRecord)


def parse(value: bytes) -> Pause | Retry | Hint | Replayed:
    """A control record from its bytes; ValueError when it is none."""
    return _RECORD.validate_json(value)


def pause_key(vendor: Vendor | str) -> bytes:
    return f"pause/{vendor}".encode()


def retry_key(vendor: Vendor | str, order_id: str) -> bytes:
    return f"retry/{vendor}/{order_id}".encode()


def replayed_key(topic: str, partition: int, offset: int) -> bytes:
    return f"replayed/{topic}/{partition}/{offset}".encode()


# The dead-letter replay header: where the re-published record came from.
REPLAYED_FROM = "orderflow.replayed_from"
