"""`orderflow inspect ORDER_ID`: every pair of the order and its events as published."""

from __future__ import annotations

import argparse
import json

from orderflow.config.settings import Settings
from orderflow.contracts.events import Vendor
from orderflow.operator.pairs import UnreadablePair, describe, read_events, read_pairs
from orderflow.operator.pause import active_pauses, describe_pause
from orderflow.operator.report import NOT_DONE, Report, Subcommands
from orderflow.operator.topics import text


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser("inspect", parents=[common],
                              help="every (order, vendor) pair of an order and its events")
    sub.add_argument("order_id")
    sub.set_defaults(run=lambda settings, args, report: inspect(settings, args.order_id, report))


async def inspect(settings: Settings, order_id: str, report: Report) -> None:
    pairs = await read_pairs(settings, order_id)
    events = await read_events(settings, order_id)
    described = [describe(pair, settings) if not isinstance(pair, UnreadablePair) else
                 {"vendor": str(vendor), "unreadable": pair.describe()}
                 for vendor, pair in sorted(pairs.items())]
    published = []
    for read in events:
        try:
            event = json.loads(text(read.value))
        except ValueError:
            event = {"unreadable": text(read.value)[:200]}
        published.append({"topic": read.topic, "partition": read.partition,
                          "offset": read.offset, "event": event})
    report.data = {"order_id": order_id, "pairs": described, "events": published}
    if not described and not published:
        report.exit_code = NOT_DONE
        report.say(f"order {order_id!r}: no pair in {settings.topics.tracking!r} and no event "
                   f"in {settings.topics.status!r} (never received, not routed, or forgotten "
                   f"after ORDERFLOW_TRACKING__TERMINAL_RETENTION_S)")
        return
    paused = await active_pauses(settings)
    report.data["paused"] = {str(v): p.model_dump(mode="json") for v, p in paused.items()}
    report.say(f"order {order_id}")
    for pair in described:
        if "unreadable" in pair:
            report.say(f"  {pair['vendor']:<7} {pair['unreadable']}")
            continue
        report.say(f"  {pair['vendor']:<7} phase={pair['phase']:<8} status={pair['status'] or '-':<11} "
                   f"ref={pair['vendor_order_ref'] or '-'} state={pair['vendor_state'] or '-'} "
                   f"attempts={pair['attempts']} round={pair['round']}")
        if pair["waits_for"]:
            report.say(f"          waits for its {pair['waits_for']} pair: starts once that "
                       f"one completed, ends once it ended otherwise")
        elif pair["next_due_at"]:
            report.say(f"          next look {pair['next_due_at']}, deadline {pair['deadline']}")
        if pair["vendor"] in {str(v) for v in paused} and pair["phase"] != "done":
            report.say(f"          {describe_pause(paused[Vendor(pair['vendor'])])}")
        else:
            report.say(f"          finished {pair['finished_at']}")
    report.say(f"  events ({len(published)}):")
    for item in published:
        event = item["event"]
        what = event.get("status") or event.get("line_id") or ""
        if event.get("event_type") == "order.shipment_tracking":
            what = ",".join(event.get("tracking_numbers", []))
        report.say(f"    {event.get('occurred_at', '?')}  {event.get('event_type', '?'):<24} "
                   f"{event.get('vendor', '-'):<7} {what}"
                   + (f"  reason: {event['reason']}" if event.get("reason") else ""))
