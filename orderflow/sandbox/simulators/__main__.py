"""Run vendor simulators as a process of their own:

    python -m orderflow.sandbox.simulators {zakeke|smake|reevoo|all} [--port N] [options]

Once listening it prints one JSON line, vendor -> base URL (what the service is configured
with; `{base URL}/_sim/...` is the control API), then serves until SIGTERM or SIGINT.
With `all` and `--port N` (not 0), the simulators take ports N, N+1 and N+2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence

from orderflow.sandbox.simulators import defaults, world
from orderflow.sandbox.simulators.base import FaultKnobs, SimulatorServer, VendorSimulator
from orderflow.sandbox.simulators.defaults import VENDORS
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orderflow.sandbox.simulators",
        description="Serve vendor simulators on loopback.",
    )
    parser.add_argument("vendor", choices=(*VENDORS, "all"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kind", action="store_true",
                        help="the vendors as their pages alone describe them: no read lag, exact "
                             "filters, any shipping or payment handle, tracking numbers at once "
                             "(default: as their notes say they really are, see world.py)")

    faults = parser.add_argument_group("fault knobs (every simulator)")
    faults.add_argument("--latency-s", type=float, default=0.0)
    faults.add_argument("--latency-jitter-s", type=float, default=0.0)
    faults.add_argument("--error-rate", type=float, default=0.0)
    faults.add_argument("--slow-rate", type=float, default=0.0)
    faults.add_argument("--slow-s", type=float, default=30.0)
    faults.add_argument("--fail-after-effect-rate", type=float, default=0.0)
    faults.add_argument(
        "--fail-after-effect-mode", choices=("error", "drop", "mixed"), default="mixed"
    )

    zakeke = parser.add_argument_group("zakeke")
    zakeke.add_argument("--zakeke-client-id", default=defaults.ZAKEKE_CLIENT_ID)
    zakeke.add_argument("--zakeke-client-secret", default=defaults.ZAKEKE_CLIENT_SECRET)
    zakeke.add_argument("--token-expires-in-s", type=int, default=3600)
    zakeke.add_argument("--zakeke-token-field", choices=("access_token", "access-token"),
                        default="access_token")
    zakeke.add_argument("--print-files-delay-s", type=float, default=1.0)
    zakeke.add_argument("--print-files-jitter-s", type=float, default=0.0)
    zakeke.add_argument("--print-file-formats", default="PDF,PNG",
                        help="comma-separated, e.g. PDF,PNG,SVG")

    smake = parser.add_argument_group("smake")
    smake.add_argument("--smake-api-key", default=defaults.SMAKE_API_KEY)
    smake.add_argument("--smake-prefix", default=defaults.SMAKE_API_PREFIX)
    smake.add_argument("--smake-seconds-per-state", type=float, default=1.0)
    smake.add_argument("--smake-failure-rate", type=float, default=0.0)
    smake.add_argument("--smake-second-parcel-rate", type=float, default=0.0,
                       help="the share of orders shipped in two parcels")

    reevoo = parser.add_argument_group("reevoo")
    reevoo.add_argument("--reevoo-api-key", default=defaults.REEVOO_API_KEY)
    reevoo.add_argument("--reevoo-api-secret", default=defaults.REEVOO_API_SECRET)
    reevoo.add_argument("--reevoo-trkref", action="append", default=None,
                        help=f"an accepted TRKREF (repeatable; default {defaults.REEVOO_TRKREF})")
    return parser


def build_simulator(vendor: str, args: argparse.Namespace) -> VendorSimulator:
    knobs = FaultKnobs(
        latency_s=args.latency_s,
        latency_jitter_s=args.latency_jitter_s,
        error_rate=args.error_rate,
        slow_rate=args.slow_rate,
        slow_s=args.slow_s,
        fail_after_effect_rate=args.fail_after_effect_rate,
        fail_after_effect_mode=args.fail_after_effect_mode,
        seed=args.seed,
    )
    real = not args.kind
    if vendor == "zakeke":
        return ZakekeSimulator(
            **(world.zakeke_options() if real else {}),
            client_id=args.zakeke_client_id,
            client_secret=args.zakeke_client_secret,
            token_expires_in_s=args.token_expires_in_s,
            token_field=args.zakeke_token_field,
            print_files_delay_s=args.print_files_delay_s,
            print_files_jitter_s=args.print_files_jitter_s,
            print_file_formats=[f.strip() for f in args.print_file_formats.split(",") if f.strip()],
            knobs=knobs,
            seed=args.seed,
        )
    if vendor == "smake":
        return SmakeSimulator(
            **(world.smake_options() if real else {"partial_match_filters": False}),
            api_key=args.smake_api_key,
            api_prefix=args.smake_prefix,
            seconds_per_state=args.smake_seconds_per_state,
            failure_rate=args.smake_failure_rate,
            second_parcel_rate=args.smake_second_parcel_rate,
            knobs=knobs,
            seed=args.seed,
        )
    return ReevooSimulator(
        api_key=args.reevoo_api_key,
        api_secret=args.reevoo_api_secret,
        trkrefs=args.reevoo_trkref or (defaults.REEVOO_TRKREF,),
        knobs=knobs,
        seed=args.seed,
    )


async def serve(args: argparse.Namespace) -> None:
    vendors = VENDORS if args.vendor == "all" else (args.vendor,)
    servers: dict[str, SimulatorServer[VendorSimulator]] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        for offset, vendor in enumerate(vendors):
            server = SimulatorServer(build_simulator(vendor, args))
            servers[vendor] = server
            await server.start(args.host, args.port + offset if args.port else 0)
        print(json.dumps({vendor: server.base_url for vendor, server in servers.items()}),
              flush=True)
        await stop.wait()
    finally:
        for server in servers.values():
            await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
