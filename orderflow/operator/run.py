"""One operator command, from its parsed arguments."""

from __future__ import annotations

import argparse

from orderflow.config.settings import Settings
from orderflow.contracts.events import Vendor
from orderflow.operator import check, dlq, inspect, pause, retry
from orderflow.operator.report import Report


async def run_command(settings: Settings, args: argparse.Namespace, report: Report) -> None:
    command = args.command
    if command == "check":
        await check.check(settings, report)
    elif command == "inspect":
        await inspect.inspect(settings, args.order_id, report)
    elif command == "retry":
        vendor = Vendor(args.vendor) if args.vendor else None
        await retry.retry(settings, args.order_id, vendor, report, args.wait)
    elif command in ("pause", "resume"):
        await pause.set_pause(settings, Vendor(args.vendor), command == "pause",
                              getattr(args, "note", None), report)
    elif args.dlq_command == "list":
        await dlq.list_letters(settings, args.since, args.reason, report)
    elif args.dlq_command == "show":
        await dlq.show(settings, args.offsets, report)
    else:
        await dlq.replay(settings, args.since, args.reason, args.offsets, args.dry_run, report,
                         again=args.again)
