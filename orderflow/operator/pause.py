"""`orderflow pause VENDOR` / `orderflow resume VENDOR`: every replica holds (lets go) the
calls to the vendor within seconds; orders keep being routed to it and wait. The record
stays on the compacted control topic, so replicas started later hold the vendor too."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from orderflow.config.settings import Settings
from orderflow.contracts import control
from orderflow.contracts.events import Vendor
from orderflow.operator.report import VENDOR_NAMES, Report, Subcommands
from orderflow.operator.topics import producer_session, read_topic


def add_parsers(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    pause = commands.add_parser("pause", parents=[common],
                                help="hold every replica's calls to a vendor; orders wait")
    pause.add_argument("vendor", choices=VENDOR_NAMES)
    pause.add_argument("--note", type=_note, help="why, kept with the pause (at most 500 characters)")
    pause.set_defaults(run=lambda settings, args, report: set_pause(
        settings, Vendor(args.vendor), True, args.note, report))
    resume = commands.add_parser("resume", parents=[common], help="let a paused vendor's calls go")
    resume.add_argument("vendor", choices=VENDOR_NAMES)
    resume.set_defaults(run=lambda settings, args, report: set_pause(
        settings, Vendor(args.vendor), False, None, report))


def _note(given: str) -> str:
    if len(given) > 500:
        raise argparse.ArgumentTypeError(f"at most 500 characters (got {len(given)})")
    return given


async def current_pause(settings: Settings, vendor: Vendor) -> control.Pause | str | None:
    """The vendor's pause record in force: only the latest record of its key counts, as on
    a compacted topic (None: never paused, or withdrawn; a text: that record is unreadable,
    and the next pause or resume writes over it)."""
    key = control.pause_key(vendor)
    reads = await read_topic(settings.kafka, settings.topics.control, keep=lambda k: k == key)
    latest = reads[-1] if reads else None
    if latest is None or latest.value is None:
        return None
    try:
        record = control.parse(latest.value)
    except ValueError:
        return f"unreadable record at {latest.partition}:{latest.offset}"
    return record if isinstance(record, control.Pause) else (
        f"unreadable record at {latest.partition}:{latest.offset}")


async def control_records(settings: Settings, prefix: bytes) -> list[control.Record]:
    """The control topic's records in force whose key starts with `prefix`: the latest of
    each key, as compaction keeps it (a tombstone or an unreadable record counts as none)."""
    latest: dict[bytes, bytes | None] = {}
    for read in await read_topic(settings.kafka, settings.topics.control,
                                 keep=lambda k: k is not None and k.startswith(prefix)):
        assert read.key is not None
        latest[read.key] = read.value
    found = []
    for value in latest.values():
        if value is None:
            continue
        try:
            found.append(control.parse(value))
        except ValueError:
            continue
    return found


async def active_pauses(settings: Settings) -> dict[Vendor, control.Pause]:
    """Every vendor paused now, with its record (note, since when)."""
    paused: dict[Vendor, control.Pause] = {}
    for record in await control_records(settings, b"pause/"):
        if isinstance(record, control.Pause) and record.paused:
            paused[record.vendor] = record
    return paused


def describe_pause(pause: control.Pause) -> str:
    since = datetime.fromtimestamp(pause.at, UTC).isoformat(timespec="seconds")
    return (f"{pause.vendor} is PAUSED since {since.replace('+00:00', 'Z')}"
            + (f" ({pause.note})" if pause.note else "")
            + f": no call to it starts until `orderflow resume {pause.vendor}`")


async def set_pause(settings: Settings, vendor: Vendor, paused: bool, note: str | None,
                    report: Report) -> None:
    current = await current_pause(settings, vendor)
    was = isinstance(current, control.Pause) and current.paused
    record = control.Pause(at=time.time(), vendor=vendor, paused=paused, note=note)
    async with producer_session(settings.kafka) as producer:
        meta = await producer.send_and_wait(settings.topics.control,
                                            record.model_dump_json().encode(), key=record.key())
    word = "paused" if paused else "resumed"
    already = was is paused
    report.data = {"vendor": str(vendor), "paused": paused, "was_paused": was,
                   "control_offset": meta.offset}
    if isinstance(current, str):
        report.data["replaced"] = current
        report.say(f"{vendor}: the pause record in force was an {current}; written over.")
    if paused:
        report.say(f"{vendor}: {'already paused; ' if already else ''}paused on every replica "
                   f"within seconds (control record at offset {meta.offset}). Orders keep being "
                   f"routed to {vendor} and wait; `orderflow resume {vendor}` lets them go.")
    else:
        report.say(f"{vendor}: {'was not paused; ' if already else ''}{word} on every replica "
                   f"within seconds (control record at offset {meta.offset}); waiting calls "
                   f"start, earliest due first, within the vendor's limits.")
