"""`orderflow dlq list|show|replay`: the dead letters with their headers, and their replay
to the input topic (original key and bytes, header `orderflow.replayed_from`).

A replay first writes a marker for the dead letter on the control topic
(`replayed/<topic>/<partition>/<offset>`), then re-publishes it: a dead letter with a
marker is never replayed again, by this command or by a second operator after it. A
re-publish that fails withdraws its marker, so that letter can be replayed later.

A replayed record whose cause was not fixed is dead-lettered again, and its new letter
carries the `orderflow.replayed_from` header of the replay: such a letter is the same
failure once more, and is replayed only when asked (`--again`); otherwise every later run
replayed it once more (three runs gave four letters of one bad record).
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orderflow.config.settings import Settings
from orderflow.contracts import control, dead_letters
from orderflow.operator.report import NOT_DONE, Report, Subcommands, UsageError
from orderflow.operator.topics import Read, as_dict, producer_session, read_topic, text


@dataclass(frozen=True, slots=True)
class Position:
    partition: int | None  # None: any partition
    offset: int

    @classmethod
    def parse(cls, given: str) -> Position:
        match = re.fullmatch(r"(?:(\d+):)?(\d+)", given.strip())
        if match is None:
            raise UsageError(f"{given!r} is not an offset (OFFSET or PARTITION:OFFSET)")
        partition, offset = match.groups()
        return cls(None if partition is None else int(partition), int(offset))

    def matches(self, read: Read) -> bool:
        return read.offset == self.offset and self.partition in (None, read.partition)


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    dlq = commands.add_parser("dlq", help="list, show and replay dead letters")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_commands.add_parser("list", parents=[common], help="dead letters, one a line")
    listing.set_defaults(run=lambda settings, args, report: list_letters(
        settings, args.since, args.reason, report))
    show_ = dlq_commands.add_parser("show", parents=[common], help="dead letters in full")
    show_.add_argument("offsets", nargs="+", metavar="OFFSET", help="OFFSET or PARTITION:OFFSET")
    show_.set_defaults(run=lambda settings, args, report: show(settings, args.offsets, report))
    replay_ = dlq_commands.add_parser(
        "replay", parents=[common],
        help="re-publish dead letters to the input topic, each at most once")
    for sub in (listing, replay_):
        sub.add_argument("--since", help="RFC 3339 time, or a duration back from now (2h, 3d)")
        sub.add_argument("--reason", help="only this reason (orderflow.error.reason)")
    replay_.add_argument("--offset", action="append", dest="offsets", metavar="O",
                         help="OFFSET or PARTITION:OFFSET (repeatable)")
    replay_.add_argument("--dry-run", action="store_true", help="say what would be replayed")
    replay_.add_argument("--again", action="store_true",
                         help="also replay letters that are a replay failing again")
    replay_.set_defaults(run=lambda settings, args, report: replay(
        settings, args.since, args.reason, args.offsets, args.dry_run, report, again=args.again))


def parse_since(given: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time, or a duration back from now: `90s`, `15m`, `2h`, `3d`."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)([smhd])", given.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        try:
            return now - timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours",
                                       "d": "days"}[unit]: amount})
        except OverflowError:
            raise UsageError(f"--since {given!r} reaches back past the year 1") from None
    try:
        moment = datetime.fromisoformat(given.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {given!r} is neither an RFC 3339 time nor a duration like 2h"
                         ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def header(read: Read, name: str) -> str | None:
    for key, value in read.headers:
        if key == name:
            return text(value)
    return None


def summary(read: Read, replayed: dict[tuple[int, int], control.Replayed]) -> dict[str, Any]:
    marker = replayed.get((read.partition, read.offset))
    return {
        "partition": read.partition, "offset": read.offset,
        "failed_at": header(read, dead_letters.FAILED_AT),
        "reason": header(read, dead_letters.ERROR_REASON),
        "error_class": header(read, dead_letters.ERROR_CLASS),
        "error_message": header(read, dead_letters.ERROR_MESSAGE),
        "key": None if read.key is None else text(read.key),
        "original": f"{header(read, dead_letters.ORIGINAL_TOPIC)}/"
                    f"{header(read, dead_letters.ORIGINAL_PARTITION)}/"
                    f"{header(read, dead_letters.ORIGINAL_OFFSET)}",
        "value_bytes": len(read.value or b""),
        "value_omitted": header(read, dead_letters.VALUE_OMITTED) is not None,
        "replayed": None if marker is None else {
            "to_topic": marker.to_topic, "to_partition": marker.to_partition,
            "to_offset": marker.to_offset,
            "at": datetime.fromtimestamp(marker.at, UTC).isoformat(timespec="seconds")},
    }


async def replay_markers(settings: Settings) -> dict[tuple[int, int], control.Replayed]:
    """The dead letters replayed so far, by (partition, offset). A marker that cannot be
    read (anything may write to the control topic) is passed over."""
    prefix = f"replayed/{settings.topics.dead_letter}/".encode()
    markers: dict[bytes, control.Replayed] = {}
    for read in await read_topic(settings.kafka, settings.topics.control,
                                 keep=lambda k: k is not None and k.startswith(prefix)):
        assert read.key is not None
        markers.pop(read.key, None)
        if read.value is None:
            continue
        try:
            record = control.parse(read.value)
        except ValueError:
            continue
        if isinstance(record, control.Replayed) and record.key() == read.key:
            markers[read.key] = record
    return {(m.partition, m.offset): m for m in markers.values()}


async def select(settings: Settings, since: str | None, reason: str | None,
                 offsets: list[str] | None) -> list[Read]:
    positions = [Position.parse(o) for o in offsets or []]
    since_at = parse_since(since) if since else None
    letters = await read_topic(settings.kafka, settings.topics.dead_letter)
    chosen = []
    for read in letters:
        if positions and not any(p.matches(read) for p in positions):
            continue
        if reason is not None and header(read, dead_letters.ERROR_REASON) != reason:
            continue
        if since_at is not None and read.timestamp_ms < since_at.timestamp() * 1000:
            continue
        chosen.append(read)
    return chosen


async def list_letters(settings: Settings, since: str | None, reason: str | None,
                       report: Report) -> None:
    letters = await select(settings, since, reason, None)
    markers = await replay_markers(settings)
    items = [summary(read, markers) for read in letters]
    report.data = {"topic": settings.topics.dead_letter, "dead_letters": items}
    report.say(f"{len(items)} dead letter(s) in {settings.topics.dead_letter!r}"
               + (f" since {since}" if since else "") + (f" with reason {reason}" if reason else ""))
    for item in items:
        replay = " (replayed)" if item["replayed"] else ""
        report.say(f"  {item['partition']}:{item['offset']}  {item['failed_at']}  "
                   f"{item['reason'] or item['error_class']:<12} key={item['key']!r}  "
                   f"{(item['error_message'] or '')[:100]}{replay}")


async def show(settings: Settings, offsets: list[str], report: Report) -> None:
    letters = await select(settings, None, None, offsets)
    markers = await replay_markers(settings)
    shown = []
    for read in letters:
        item = summary(read, markers) | as_dict(read) | {"value": text(read.value)}
        shown.append(item)
        report.say(f"dead letter {read.partition}:{read.offset} of {read.topic!r}")
        for name, value in read.headers:
            report.say(f"  {name}: {text(value)}")
        report.say(f"  key: {item['key']!r}")
        report.say(f"  value ({len(read.value or b'')} bytes): {text(read.value)[:2000]}")
        if item["replayed"]:
            report.say(f"  replayed to {item['replayed']}")
    report.data = {"topic": settings.topics.dead_letter, "dead_letters": shown}
    missing = [o for o in offsets if not any(Position.parse(o).matches(r) for r in letters)]
    if missing:
        report.exit_code = NOT_DONE
        report.say(f"not in {settings.topics.dead_letter!r}: {', '.join(missing)}")


def _why_not(read: Read, markers: dict[tuple[int, int], control.Replayed],
             again: bool) -> str | None:
    """Why this letter is not to be replayed now, or None."""
    if (read.partition, read.offset) in markers:
        return "replayed before"
    replay_of = header(read, control.REPLAYED_FROM)
    if replay_of is not None and not again:
        return (f"it is the replay of {replay_of} failing again: fix the cause, then "
                f"--again to replay it once more")
    return None


async def replay(settings: Settings, since: str | None, reason: str | None,
                 offsets: list[str] | None, dry_run: bool, report: Report,
                 again: bool = False) -> None:
    letters = await select(settings, since, reason, offsets)
    markers = await replay_markers(settings)
    results: list[dict[str, Any]] = []
    report.data = {"topic": settings.topics.dead_letter, "to_topic": settings.topics.orders_created,
                   "dry_run": dry_run, "dead_letters": results}
    pending = []
    for read in letters:
        why = _why_not(read, markers, again)
        if why is None:
            pending.append(read)
        else:
            results.append({"partition": read.partition, "offset": read.offset,
                            "action": "skipped", "why": why})
    if pending and not dry_run:
        async with producer_session(settings.kafka) as producer:
            for read in pending:
                results.append(await _replay_one(settings, producer, read, dry_run))
    else:
        for read in pending:
            results.append(await _replay_one(settings, None, read, dry_run))
    replayed = sum(1 for r in results if r["action"] in ("replayed", "would_replay"))
    report.say(f"{replayed} dead letter(s) {'would be ' if dry_run else ''}replayed to "
               f"{settings.topics.orders_created!r}, "
               f"{sum(1 for r in results if r['action'] == 'skipped')} skipped, "
               f"{sum(1 for r in results if r['action'] == 'failed')} failed")
    for item in results:
        report.say(f"  {item['partition']}:{item['offset']}  {item['action']}"
                   + (f" -> {item['to_partition']}:{item['to_offset']}" if "to_offset" in item else "")
                   + (f"  ({item['why']})" if item.get("why") else ""))
    if offsets and not letters:
        report.exit_code = NOT_DONE
    if any(r["action"] == "failed" for r in results):
        report.exit_code = NOT_DONE


async def _replay_one(settings: Settings, producer: Any, read: Read, dry_run: bool
                      ) -> dict[str, Any]:
    where: dict[str, Any] = {"partition": read.partition, "offset": read.offset}
    key, value = read.key, read.value
    if header(read, dead_letters.VALUE_OMITTED) is not None:
        original = await _original(settings, read)
        if original is None:
            return where | {"action": "failed",
                            "why": "its value was omitted and the input topic no longer holds it"}
        key, value = original.key, original.value
    if dry_run:
        return where | {"action": "would_replay"}
    topics = settings.topics
    marker = control.Replayed(at=time.time(), topic=topics.dead_letter, partition=read.partition,
                              offset=read.offset, to_topic=topics.orders_created)
    await producer.send_and_wait(topics.control, marker.model_dump_json().encode(), key=marker.key())
    source = f"{topics.dead_letter}/{read.partition}/{read.offset}".encode()
    try:
        meta = await producer.send_and_wait(topics.orders_created, value, key=key,
                                            headers=[(control.REPLAYED_FROM, source)])
    except Exception as exc:
        await producer.send_and_wait(topics.control, None, key=marker.key())
        return where | {"action": "failed", "why": f"could not publish: {exc}"}
    done = marker.model_copy(update={"to_partition": meta.partition, "to_offset": meta.offset})
    await producer.send_and_wait(topics.control, done.model_dump_json().encode(), key=done.key())
    return where | {"action": "replayed", "to_partition": meta.partition, "to_offset": meta.offset}


async def _original(settings: Settings, read: Read) -> Read | None:
    topic = header(read, dead_letters.ORIGINAL_TOPIC)
    partition = header(read, dead_letters.ORIGINAL_PARTITION)
    offset = header(read, dead_letters.ORIGINAL_OFFSET)
    if not topic or not partition or not offset or not (partition + offset).isdigit():
        return None
    found = await read_topic(settings.kafka, topic, partitions=[int(partition)],
                             start_offsets={int(partition): int(offset)}, limit=1)
    return next((r for r in found if r.offset == int(offset)), None)
