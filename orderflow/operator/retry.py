"""`orderflow retry ORDER_ID [--vendor V]`: re-open the order's pairs that ended `rejected`,
`failed` or `timed_out`, through the control topic, for the replica owning each pair to
submit again (asking the vendor first, as any submission that may have created the order).

A retry names the finished state it re-opens, so the same command twice, or a replica
reading it again after a restart, re-opens nothing more. The command waits a little for
the owner to record the re-opened pair and says whether it did.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

from orderflow.config.settings import Settings
from orderflow.consumer.jobs import Phase
from orderflow.contracts import control
from orderflow.contracts.events import Vendor, VendorStatus
from orderflow.operator.pairs import PairRecord, UnreadablePair, read_pairs
from orderflow.operator.report import NOT_DONE, VENDOR_NAMES, Report, Subcommands
from orderflow.operator.topics import producer_session

RETRYABLE = frozenset({VendorStatus.REJECTED, VendorStatus.FAILED, VendorStatus.TIMED_OUT})


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "retry", parents=[common],
        help="re-open an order's pairs that ended rejected, failed or timed_out")
    sub.add_argument("order_id")
    sub.add_argument("--vendor", choices=VENDOR_NAMES, help="only this vendor's pair")
    sub.add_argument("--wait", type=finite_seconds, default=15.0,
                     help="seconds to wait for the owning replica to take it (default 15)")
    sub.set_defaults(run=lambda settings, args, report: retry(
        settings, args.order_id, Vendor(args.vendor) if args.vendor else None, report, args.wait))


def finite_seconds(given: str) -> float:
    try:
        value = float(given)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{given!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= 3_600:
        raise argparse.ArgumentTypeError(f"{given!r}: give seconds from 0 to 3600")
    return value


async def retry(settings: Settings, order_id: str, vendor: Vendor | None, report: Report,
                wait_s: float) -> None:
    pairs = await read_pairs(settings, order_id, None if vendor is None else [vendor])
    outcome: list[dict[str, object]] = []
    report.data = {"order_id": order_id, "pairs": outcome}
    if not pairs:
        report.exit_code = NOT_DONE
        which = f" for {vendor}" if vendor else ""
        report.say(f"order {order_id!r}: no pair{which} in {settings.topics.tracking!r}")
        return
    to_reopen: dict[Vendor, PairRecord] = {}
    for pair_vendor, pair in sorted(pairs.items()):
        if isinstance(pair, UnreadablePair):
            outcome.append({"vendor": str(pair_vendor), "action": "left_alone",
                            "why": f"its {pair.describe()}"})
            continue
        job = pair.job
        if job.phase is not Phase.DONE:
            outcome.append({"vendor": str(pair_vendor), "action": "left_alone",
                            "why": f"still active ({job.phase}, status {job.status or 'none yet'})"})
        elif job.status not in RETRYABLE:
            outcome.append({"vendor": str(pair_vendor), "action": "left_alone",
                            "why": f"ended {job.status}: not retried"})
        elif (job.order_json is None and not job.order_view) or job.finished_at is None:
            outcome.append({"vendor": str(pair_vendor), "action": "left_alone",
                            "why": "its record holds no order to submit again (written by an "
                                   "older release)"})
        else:
            to_reopen[pair_vendor] = pair
    if Vendor.REEVOO in to_reopen:
        report.say(f"{order_id} reevoo: Reevoo cannot be asked whether it holds the order: if "
                   f"its earlier submission reached Reevoo, Reevoo gets the order twice")
    if to_reopen:
        async with producer_session(settings.kafka) as producer:
            for pair_vendor, pair in to_reopen.items():
                job = pair.job
                assert job.finished_at is not None
                command = control.Retry(
                    at=time.time(), vendor=pair_vendor, order_id=order_id,
                    finished_at=job.finished_at, round=job.round,
                    source_event_id=job.source_event_id,
                    order=None if job.order_json is None else job.read_order().model_dump(
                        mode="json", exclude_none=True),
                    order_view=job.order_view, vendor_order_ref=job.vendor_order_ref)
                await producer.send_and_wait(settings.topics.control,
                                             command.model_dump_json().encode(), key=command.key())
        reopened = await _wait_for_owner(settings, order_id, to_reopen, wait_s)
        for pair_vendor, pair in to_reopen.items():
            taken = pair_vendor in reopened
            outcome.append({
                "vendor": str(pair_vendor), "action": "reopened" if taken else "sent",
                "was": str(pair.job.status), "round": pair.job.round + 1,
                "why": (f"re-opened by its replica; {_submitted_again(pair)}" if taken else
                        f"sent; no replica recorded it within {wait_s:g}s (it will when the "
                        f"pair's owner runs)")})
    for item in outcome:
        report.say(f"{order_id} {item['vendor']}: {item['action']}: {item['why']}")
    if not to_reopen:
        report.exit_code = NOT_DONE


def _submitted_again(pair: PairRecord) -> str:
    """What a re-opened pair's next submission does, as the contract says it."""
    job = pair.job
    if job.vendor is Vendor.SMAKE:
        previous = f" ({job.vendor_order_ref})" if job.vendor_order_ref else ""
        return (f"it is submitted again: Smake is asked first, and its order that "
                f"{job.status}{previous} is not taken again, so a new Smake order is created")
    if job.vendor is Vendor.REEVOO:
        return "it is submitted to Reevoo again (Reevoo cannot be asked first)"
    return "it is submitted again (asking Zakeke first whether it holds the order)"


async def _wait_for_owner(settings: Settings, order_id: str, sent: dict[Vendor, PairRecord],
                          wait_s: float) -> set[Vendor]:
    """The pairs whose owner has recorded them re-opened, within `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        now = await read_pairs(settings, order_id, list(sent))
        done = {vendor for vendor, pair in now.items()
                if isinstance(pair, PairRecord) and pair.job.round > sent[vendor].job.round}
        if done == set(sent) or time.monotonic() >= deadline:
            return done
        await asyncio.sleep(1.0)
