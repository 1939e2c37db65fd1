"""What a command says: lines for a person, one JSON document for a script."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

OK, NOT_THERE, USAGE = 0, 1, 2


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

    def emit(self, out: TextIO = sys.stdout) -> int:
        if self.as_json:
            json.dump({"command": self.command, "exit_code": self.exit_code, **self.data}, out,
                      indent=2, default=str, ensure_ascii=False)
            out.write("\n")
        else:
            for line in self.lines:
                out.write(line + "\n")
        out.flush()
        return self.exit_code
