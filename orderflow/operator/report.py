"""What a command says: lines for a person, one JSON document for a script."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

from orderflow.contracts.events import Vendor

if TYPE_CHECKING:
    from orderflow.config.settings import Settings

# What each command module adds its parser to (argparse's sub-command registry).
Subcommands: TypeAlias = "argparse._SubParsersAction[Any]"
VENDOR_NAMES = tuple(str(v) for v in Vendor)

class ExitCode(IntEnum):
    """The contract's exit codes, one meaning each."""

    OK = 0
    # What was asked was not done: what it names is not there (an order, a dead letter), a
    # check failed, or the command could not do it (the brokers unreachable, interrupted).
    # The contract gives all of these one code; the line printed says which.
    NOT_DONE = 1
    USAGE = 2  # bad usage or settings


OK, NOT_DONE, USAGE = ExitCode.OK, ExitCode.NOT_DONE, ExitCode.USAGE


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


@dataclass
class Report:
    command: str
    as_json: bool = False
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = OK

    def say(self, line: str) -> None:
        self.lines.append(line)

    def emit(self, out: TextIO | None = None) -> int:
        out = out or sys.stdout
        try:
            if self.as_json:
                json.dump({"command": self.command, "exit_code": self.exit_code, **self.data},
                          out, indent=2, default=str, ensure_ascii=False)
                out.write("\n")
            else:
                for line in self.lines:
                    out.write(line + "\n")
            out.flush()
        except BrokenPipeError:
            # `orderflow ... | head`: the reader has gone, and that is no error. Python would
            # report the pipe again when it flushes stdout on the way out: point it elsewhere.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        return self.exit_code

    def fail(self, code: int, message: str) -> int:
        """End with one line naming the problem on stderr (and, under --json, the JSON
        document on stdout, with `error`)."""
        self.exit_code = code
        self.data = {**self.data, "error": message}
        print(f"orderflow {self.command}: {message}", file=sys.stderr)
        if self.as_json:
            self.lines = []
            self.emit()
        return code


def problem(exc: BaseException, settings: Settings) -> str:
    """One line for what stopped a command, naming the setting to look at where one is."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from orderflow.config.settings import env_name

    if isinstance(exc, KafkaConnectionError | asyncio.TimeoutError | TimeoutError | OSError) or (
            isinstance(exc, KafkaError) and "connect" in str(exc).lower()):
        return (f"no broker answers at {settings.kafka.bootstrap_servers} "
                f"({env_name('kafka', 'bootstrap_servers')}): {describe_error(exc)}")
    if isinstance(exc, KafkaError):
        return f"Kafka refused: {describe_error(exc)}"
    return f"failed: {describe_error(exc)}"


def describe_error(exc: BaseException) -> str:
    name, text = type(exc).__name__, " ".join(str(exc).split())
    return (text if text.startswith(name) else f"{name}: {text}" if text else name)[:500]
