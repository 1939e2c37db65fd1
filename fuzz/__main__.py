"""`make fuzz`: hostile records through the real intake, hostile answers through every
adapter, hostile webhook deliveries to a running service, hostile tracking and control
records through restore and the control reader, hostile join metadata through the group
leader's assignment. Prints the figures and exits 1 on any
crash, stall or violation.

    python -m fuzz        # 100,000 records, 3,000 calls per vendor, 2,000 deliveries,
                          # 100,000 internal, 20,000 group assignments
    python -m fuzz --records 2000 --answers 200 --webhooks 100 --internal 2000 --claims 500 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from fuzz.answers import run_answers_fuzz
from fuzz.claims import run_claims_fuzz
from fuzz.intake import run_intake_fuzz
from fuzz.internal import run_internal_fuzz
from fuzz.webhooks import run_webhooks_fuzz
from orderflow.config.settings import LogSettings
from orderflow.consumer.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000,
                        help="input records to generate (default 100000; 0 skips)")
    parser.add_argument("--answers", type=int, default=3_000,
                        help="adapter calls per vendor against generated answers (default 3000; 0 skips)")
    parser.add_argument("--webhooks", type=int, default=2_000,
                        help="generated deliveries per phase to POST /webhooks/smake (default 2000; 0 skips)")
    parser.add_argument("--internal", type=int, default=100_000,
                        help="tracking and control records through restore and the control "
                             "reader (default 100000; 0 skips)")
    parser.add_argument("--claims", type=int, default=20_000,
                        help="group assignments from hostile join metadata (default 20000; 0 skips)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.records, args.answers, args.webhooks, args.internal, args.claims) < 0:
        parser.error("counts must not be negative")
    # The service's own log lines (a dead letter each) would drown the figures.
    configure_logging(LogSettings(level="CRITICAL"))
    passed = True
    if args.answers:
        answers = asyncio.run(run_answers_fuzz(args.answers, args.seed))
        print(answers.render(), flush=True)
        passed &= answers.passed
    if args.webhooks:
        webhooks = asyncio.run(run_webhooks_fuzz(args.webhooks, args.seed))
        print(webhooks.render(), flush=True)
        passed &= webhooks.passed
    if args.records:
        records = asyncio.run(run_intake_fuzz(args.records, args.seed))
        print(records.render(), flush=True)
        passed &= records.passed
    if args.internal:
        internal = asyncio.run(run_internal_fuzz(args.internal, args.seed))
        print(internal.render(), flush=True)
        passed &= internal.passed
    if args.claims:
        claims = run_claims_fuzz(args.claims, args.seed)
        print(claims.render(), flush=True)
        passed &= claims.passed
    print("fuzz: PASSED" if passed else "fuzz: FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
