"""The operator commands, as one table: each command module registers its own parser and
what runs it (`set_defaults(run=...)`); running a command is calling that."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from orderflow.config.settings import Settings
from orderflow.operator import cancel, check, dlq, inspect, pause, retry, status
from orderflow.operator.report import Report, Subcommands

# In the order `orderflow --help` lists them.
REGISTER: tuple[Callable[[Subcommands, argparse.ArgumentParser], None], ...] = (
    check.add_parser, status.add_parser, inspect.add_parser, retry.add_parser, cancel.add_parser,
    dlq.add_parser, pause.add_parsers)


def add_operator_parsers(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """Every operator command's parser; `common` holds the options they share (--json)."""
    for register in REGISTER:
        register(commands, common)


async def run_command(settings: Settings, args: argparse.Namespace, report: Report) -> None:
    await args.run(settings, args, report)
