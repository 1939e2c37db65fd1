"""The `orderflow` command: `run` (the service) and `demo` (everything on this machine)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence


def _exit_before_start(signum: int, frame: object) -> None:
    # SIGTERM while still importing or reading settings: nothing is running yet, so nothing
    # can be lost; leave at once and cleanly. The service installs its own handler later.
    raise SystemExit(0)


def _run() -> int:
    signal.signal(signal.SIGTERM, _exit_before_start)
    from orderflow.config.settings import ConfigError, load_settings
    from orderflow.consumer.app import Application
    from orderflow.consumer.kafka import StartupError
    from orderflow.consumer.logging import configure_logging

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"orderflow: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log)

    async def serve() -> int:
        # Kafka clients must be created inside the running event loop.
        return await Application(settings).run_until_signalled()

    try:
        return asyncio.run(serve())
    except StartupError as exc:
        print(f"orderflow: cannot start: {exc}", file=sys.stderr)
        return 2


def _demo(args: argparse.Namespace) -> int:
    try:
        from orderflow.sandbox.demo import run_demo
    except ImportError as exc:
        print(f"orderflow: the demo needs the sandbox extra ({exc}): pip install 'orderflow[sandbox]'",
              file=sys.stderr)
        return 2
    return asyncio.run(run_demo(orders=args.orders, timeout_s=args.timeout, seed=args.seed,
                                http_port=args.http_port))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the service, configured from ORDERFLOW_* variables")
    demo = commands.add_parser(
        "demo", help="embedded broker, vendor sandbox, the service and sample orders, with progress")
    demo.add_argument("--orders", type=int, default=300, help="sample orders to send (default 300)")
    demo.add_argument("--timeout", type=float, default=180.0,
                      help="seconds to wait for every order to end (default 180)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the sample orders and faults")
    demo.add_argument("--http-port", type=int, default=0,
                      help="port for /metrics, /healthz, /readyz (default: a free one)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run()
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
