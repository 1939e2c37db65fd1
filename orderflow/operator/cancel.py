"""`orderflow cancel ORDER_ID [--reason R]`: publish an `order.cancelled` v1 for the order to
the input topic (the same effect as upstream's), then wait a little and say what became of
each of the order's pairs: cancelled, refused (with the reason), or still pending.

The cancellation takes effect wherever the order's pairs are owned, and on an order that
has not come yet (it is then never sent); the command only reports what it sees meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from orderflow.config.settings import Settings
from orderflow.consumer.jobs import Phase
from orderflow.contracts.events import OrderCancelled, Vendor, VendorStatus
from orderflow.operator.pairs import PairRecord, read_events, read_pairs
from orderflow.operator.report import NOT_DONE, Report, Subcommands, UsageError
from orderflow.operator.retry import finite_seconds
from orderflow.operator.topics import producer_session, text


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "cancel", parents=[common],
        help="cancel an order at every vendor that can still withdraw it")
    sub.add_argument("order_id")
    sub.add_argument("--reason", help="why (at most 500 characters), in each cancelled status")
    sub.add_argument("--wait", type=finite_seconds, default=15.0,
                     help="seconds to wait for the pairs' outcomes (default 15)")
    sub.set_defaults(run=lambda settings, args, report: cancel(
        settings, args.order_id, args.reason, report, args.wait))


def cancellation(order_id: str, reason: str | None) -> OrderCancelled:
    """The event, validated as the service validates it (a bad id or reason is a usage
    error here, never a dead letter there)."""
    try:
        return OrderCancelled(event_id=str(uuid.uuid4()), event_type="order.cancelled",
                              schema_version=1, occurred_at=datetime.now(UTC),
                              order_id=order_id, reason=reason)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors(include_input=False))
        raise UsageError(f"not a cancellation orderflow takes: {problems}") from None


async def cancel(settings: Settings, order_id: str, reason: str | None, report: Report,
                 wait_s: float) -> None:
    event = cancellation(order_id, reason)
    async with producer_session(settings.kafka) as producer:
        await producer.send_and_wait(settings.topics.orders_created,
                                     event.model_dump_json().encode(), key=order_id.encode())
    outcomes = await _wait_for_outcomes(settings, order_id, event.event_id, wait_s)
    report.data = {"order_id": order_id, "event_id": event.event_id, "pairs": outcomes}
    report.say(f"{order_id}: order.cancelled {event.event_id} published to "
               f"{settings.topics.orders_created!r}")
    if not outcomes:
        report.exit_code = NOT_DONE
        report.say(f"{order_id}: no pair of the order yet: if it comes, it is never sent")
    for item in outcomes:
        report.say(f"{order_id} {item['vendor']}: {item['outcome']}"
                   + (f": {item['reason']}" if item.get("reason") else ""))
    if any(item["outcome"] == "pending" for item in outcomes):
        report.exit_code = NOT_DONE


async def _wait_for_outcomes(settings: Settings, order_id: str, event_id: str,
                             wait_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_s
    while True:
        outcomes = await _outcomes(settings, order_id, event_id)
        if (outcomes and all(o["outcome"] != "pending" for o in outcomes)) \
                or time.monotonic() >= deadline:
            return outcomes
        await asyncio.sleep(1.0)


async def _outcomes(settings: Settings, order_id: str, event_id: str) -> list[dict[str, Any]]:
    """Each pair's outcome, from its record and the order's events."""
    pairs = await read_pairs(settings, order_id)
    terminal: dict[str, dict[str, Any]] = {}
    refused: dict[str, dict[str, Any]] = {}
    for read in await read_events(settings, order_id):
        try:
            event = json.loads(text(read.value))
        except ValueError:
            continue
        vendor = str(event.get("vendor"))
        if event.get("event_type") == "order.cancellation_refused":
            refused.setdefault(vendor, event)
        elif event.get("event_type") == "order.vendor_status" and event.get("terminal"):
            terminal.setdefault(vendor, event)
    found = []
    for vendor, pair in sorted(pairs.items()):
        name = str(vendor)
        if not isinstance(pair, PairRecord):
            found.append({"vendor": name, "outcome": "pending", "reason": pair.describe()})
            continue
        found.append({"vendor": name, **_outcome(pair, terminal.get(name), refused.get(name),
                                                event_id)})
    return found


def _outcome(pair: PairRecord, ended: dict[str, Any] | None, refused: dict[str, Any] | None,
             event_id: str) -> dict[str, Any]:
    job = pair.job
    if job.status is VendorStatus.CANCELLED and job.phase is Phase.DONE:
        return {"outcome": "cancelled", "reason": (ended or {}).get("reason")}
    if refused is not None:
        return {"outcome": "refused", "reason": refused.get("reason"),
                "cancellation": refused.get("source_event_id")}
    if job.phase is Phase.DONE and job.status is not VendorStatus.COMPLETED:
        return {"outcome": "ended before", "reason": f"it ended {job.status}: nothing to cancel"}
    return {"outcome": "pending", "reason": _pending_why(job.vendor, job.cancel_id, event_id)}


def _pending_why(vendor: Vendor, applied: str | None, event_id: str) -> str:
    if applied is None:
        return "its replica has not applied the cancellation yet"
    if vendor is Vendor.SMAKE:
        return "Smake is being asked to cancel it"
    return f"cancellation {applied} applied; its outcome is not published yet"
