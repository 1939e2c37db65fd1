"""python -m chaos [--short] [--orders N] [--rate R] [...]: see chaos/harness.py."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from chaos.harness import run_chaos
from chaos.plan import ChaosPlan
from orderflow.sandbox.simulators.defaults import VENDORS


def non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def parse_args(argv: Sequence[str] | None = None) -> ChaosPlan:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--short", action="store_true",
                        help="the size `make test` runs: every fault kind, about a minute")
    defaults = ChaosPlan()
    for f in dataclasses.fields(ChaosPlan):
        if f.name in ("work_dir", "outage_vendor", "broker"):
            continue
        kind = type(getattr(defaults, f.name))
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=non_negative(kind), default=None)
    parser.add_argument("--outage-vendor", choices=VENDORS, default=None)
    parser.add_argument("--broker", default=None,
                        help="tansu, noida or kafka://host:port (default: TEST_BROKER, else tansu)")
    parser.add_argument("--work-dir", type=Path, default=Path("chaos/results/run"),
                        help="logs of every process and report.json (default: %(default)s)")
    args = parser.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ChaosPlan)
             if getattr(args, f.name) is not None}
    plan = ChaosPlan.short(**given) if args.short else ChaosPlan(**given)
    if plan.problems():
        parser.error("; ".join(plan.problems()))
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    report = asyncio.run(run_chaos(plan))
    print(report.render())
    print(f"\nlogs and report.json: {plan.work_dir}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
