"""The `orderflow` command: `run` (the service), `demo` (everything on this machine) and the
operator commands (`check`, `inspect`, `retry`, `dlq`, `pause`, `resume`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn


def _exit_before_start(signum: int, frame: object) -> None:
    # SIGTERM while still importing or reading settings: nothing is running yet, so nothing
    # can be lost; leave at once and cleanly. The service installs its own handler later.
    raise SystemExit(0)


def _run() -> int:
    signal.signal(signal.SIGTERM, _exit_before_start)
    from orderflow.config.settings import ConfigError, load_settings
    from orderflow.consumer import tracing
    from orderflow.consumer.app import Application
    from orderflow.consumer.kafka import StartupError
    from orderflow.consumer.logging import configure_logging, orderflow_version

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"orderflow: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log)
    tracing.start(orderflow_version())  # only when the OTEL_* environment asks for traces

    async def serve() -> int:
        # Kafka clients must be created inside the running event loop.
        return await Application(settings).run_until_signalled()

    try:
        return asyncio.run(serve())
    except StartupError as exc:
        print(f"orderflow: cannot start: {exc}", file=sys.stderr)
        return 2
    finally:
        tracing.stop()


def _demo(args: argparse.Namespace) -> int:
    try:
        from orderflow.sandbox.demo import run_demo
    except ImportError as exc:
        print(f"orderflow: the demo needs the sandbox extra ({exc}): pip install 'orderflow[sandbox]'",
              file=sys.stderr)
        return 2
    return asyncio.run(run_demo(orders=args.orders, timeout_s=args.timeout, seed=args.seed,
                                http_port=args.http_port))


def _sandbox(args: argparse.Namespace) -> int:
    try:
        from orderflow.sandbox.practice import run_sandbox
    except ImportError as exc:
        print(f"orderflow: the sandbox needs the sandbox extra ({exc}): "
              "pip install 'orderflow[sandbox]'", file=sys.stderr)
        return 2
    return asyncio.run(run_sandbox(seed=args.seed, http_port=args.http_port))


def _operator(args: argparse.Namespace) -> int:
    from orderflow.config.settings import ConfigError, LogSettings, load_settings
    from orderflow.consumer.logging import configure_logging
    from orderflow.operator.report import NOT_DONE, USAGE, Report, UsageError, problem
    from orderflow.operator.run import run_command

    report = Report(args.command if args.command != "dlq" else f"dlq {args.dlq_command}",
                    as_json=args.json)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return report.fail(USAGE, f"configuration error: {exc}")
    # Client libraries' lines go to stderr, and only when something is wrong.
    configure_logging(LogSettings(format=settings.log.format, level="CRITICAL"))
    try:
        asyncio.run(run_command(settings, args, report))
    except UsageError as exc:
        return report.fail(USAGE, str(exc))
    except KeyboardInterrupt:
        return report.fail(NOT_DONE, "interrupted")
    except Exception as exc:  # every failure is one line (and JSON), never a traceback
        return report.fail(NOT_DONE, problem(exc, settings))
    return report.emit()


class _Parser(argparse.ArgumentParser):
    """Bad usage raises (exit 2 with one line, and JSON under --json) instead of printing
    argparse's usage text and exiting on its own."""

    def error(self, message: str) -> NoReturn:
        raise BadUsage(self.prog, message)


class BadUsage(Exception):
    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


def _operator_parsers(commands: argparse._SubParsersAction[_Parser]) -> None:
    from orderflow.operator.run import add_operator_parsers

    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    add_operator_parsers(commands, common)


def build_parser() -> argparse.ArgumentParser:
    from orderflow.consumer.logging import orderflow_version

    parser = _Parser(prog="orderflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orderflow {orderflow_version()}")
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
    sandbox = commands.add_parser(
        "sandbox", help="keep a broker, the vendor simulators and one replica up to practise on "
                        "(prints the environment to source and commands to try)")
    sandbox.add_argument("--seed", type=int, default=7, help="seed of the sample orders")
    sandbox.add_argument("--http-port", type=int, default=0,
                         help="port for /metrics, /healthz, /readyz (default: a free one)")
    _operator_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(given)
    except BadUsage as exc:
        from orderflow.operator.report import USAGE, Report

        command = next((word for word in given if not word.startswith("-")), "orderflow")
        return Report(command, as_json="--json" in given).fail(USAGE, f"{exc} (see {exc.prog} --help)")
    if args.command == "run":
        return _run()
    if args.command == "demo":
        return _demo(args)
    if args.command == "sandbox":
        return _sandbox(args)
    return _operator(args)


if __name__ == "__main__":
    sys.exit(main())
