"""An order's pairs as the tracking topic holds them, and its events as published."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orderflow.config.settings import Settings
from orderflow.consumer.jobs import Job, Phase, tracking_key
from orderflow.consumer.tracking_record import read_tracking_record
from orderflow.consumer.transitions import deadline
from orderflow.contracts.events import Vendor
from orderflow.operator.topics import Read, partition_count, producer_partition, read_topic


@dataclass(frozen=True, slots=True)
class PairRecord:
    job: Job
    offset: int
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UnreadablePair:
    """A pair whose latest tracking record this release cannot read (the replicas skip it
    too): where it is and why."""

    vendor: Vendor
    partition: int
    offset: int
    reason: str

    def describe(self) -> str:
        return f"unreadable record at {self.partition}:{self.offset} ({self.reason})"


async def read_pairs(settings: Settings, order_id: str, vendors: list[Vendor] | None = None
                     ) -> dict[Vendor, PairRecord | UnreadablePair]:
    """The latest tracking record of each of the order's pairs (a removed pair is absent),
    read as the replicas read it: a record that cannot be read is said so, never raised."""
    keys = {tracking_key((order_id, v)): v for v in (vendors or list(Vendor))}
    latest: dict[Vendor, PairRecord | UnreadablePair | None] = {}
    for read in await read_topic(settings.kafka, settings.topics.tracking,
                                 keep=lambda key: key in keys):
        assert read.key is not None
        vendor = keys[read.key]
        if read.value is None:
            latest[vendor] = None
            continue
        try:
            job = read_tracking_record(read.key, read.value, read.partition)
        except ValueError as exc:
            latest[vendor] = UnreadablePair(vendor, read.partition, read.offset, str(exc)[:200])
            continue
        latest[vendor] = PairRecord(job, read.offset, json.loads(read.value))
    return {vendor: record for vendor, record in latest.items() if record is not None}


async def read_events(settings: Settings, order_id: str) -> list[Read]:
    """The order's events on the status and print-files topics, in the order written
    (orderflow keys them by order id, so each sits in one partition)."""
    key = order_id.encode()
    found: list[Read] = []
    for topic in (settings.topics.status, settings.topics.print_files_ready):
        count = await partition_count(settings.kafka, topic)
        if not count:
            continue
        found.extend(await read_topic(settings.kafka, topic,
                                      partitions=[producer_partition(key, count)],
                                      keep=lambda k: k == key))
    found.sort(key=lambda r: r.timestamp_ms)
    return found


def when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(pair: PairRecord, settings: Settings) -> dict[str, Any]:
    job = pair.job
    active = job.phase not in (Phase.DONE, Phase.WAIT)
    return {
        "vendor": str(job.vendor),
        "phase": str(job.phase),
        "status": None if job.status is None else str(job.status),
        # A pair waiting for another pair of its order (that pair's vendor), else null.
        "waits_for": None if job.waits_for is None else str(job.waits_for),
        "fulfilled_at": when(job.fulfilled_at),
        "vendor_order_ref": job.vendor_order_ref,
        "vendor_state": job.vendor_state,
        "attempts": job.attempts,
        "polls_without_change": job.polls_without_change,
        "created_at": when(job.created_at),
        "next_due_at": when(job.due_at) if active else None,
        "deadline": when(deadline(job, settings.poll_for(job.vendor))) if active else None,
        "finished_at": when(job.finished_at),
        "intent_at": when(job.intent_at),
        "round": job.round,
        # The order's cancellation applied to the pair (its event id), and whether a cancel
        # call to the vendor is still owed.
        "cancellation": job.cancel_id,
        "cancel_owed": job.cancelling,
        "source_event_id": job.source_event_id,
        "tracking_partition": pair.job.partition,
        "tracking_offset": pair.offset,
    }
