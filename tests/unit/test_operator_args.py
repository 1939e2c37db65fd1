"""The operator commands' arguments: what a person types is understood or refused with exit
code 2 and a message, never a traceback. Property-based over the command line's words."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.cli import BadUsage, build_parser, main
from orderflow.operator.dlq import Position, parse_since
from orderflow.operator.report import UsageError


def parse(argv: list[str]) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code argparse ends with (its message swallowed)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv)
        except BadUsage:
            return 2
        except SystemExit as exit_:
            return int(exit_.code or 0)


def test_each_command_and_its_bad_usage() -> None:
    assert parse(["check", "--json"]).json is True  # type: ignore[union-attr]
    assert parse(["retry", "A-1", "--vendor", "smake"]).vendor == "smake"  # type: ignore[union-attr]
    assert parse(["dlq", "replay", "--offset", "0:1", "--offset", "7", "--reason", "schema"]
                 ).offsets == ["0:1", "7"]  # type: ignore[union-attr]
    for bad in (["retry"], ["retry", "A-1", "--vendor", "amazon"], ["pause", "nobody"], ["dlq"],
                ["dlq", "show"], ["inspect"], ["frobnicate"], [], ["check", "--wat"]):
        assert parse(bad) == 2, bad
    assert parse(["--version"]) == 0


@pytest.mark.parametrize("argv", [
    ["retry", "A-1", "--wait", "nan"], ["retry", "A-1", "--wait", "inf"],
    ["retry", "A-1", "--wait", "-1"], ["pause", "smake", "--note", "x" * 501],
    ["dlq", "replay", "--wat"], ["frobnicate"]])
def test_bad_usage_is_one_line_and_json_under_json(argv: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`retry --wait nan` never ended; a long note ended in a traceback."""
    assert main([*argv, "--json"]) == 2
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["exit_code"] == 2 and document["error"]
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1


def test_offsets_and_times() -> None:
    assert Position.parse("3:42") == Position(3, 42) and Position.parse("42") == Position(None, 42)
    for bad in ("", "-1", "a:1", "1:", "1:2:3", "4.5"):
        with pytest.raises(UsageError):
            Position.parse(bad)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("2026-12-01T10:00:00Z", now) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_since("2026-12-01T10:00:00", now).tzinfo is not None
    for bad in ("yesterday", "2x", "", "99999999999999d"):
        with pytest.raises(UsageError):
            parse_since(bad, now)


WORDS = ["check", "inspect", "retry", "dlq", "list", "show", "replay", "pause", "resume",
         "smake", "zakeke", "reevoo", "--vendor", "--json", "--since", "--reason", "--offset",
         "--dry-run", "--note", "--wait", "1", "0:3", "2h", "A-1", "-x", "--", ""]


@settings(max_examples=400)
@given(argv=st.lists(st.sampled_from(WORDS) | st.text(max_size=12), max_size=7))
def test_any_command_line_is_understood_or_refused_with_exit_2(argv: list[str]) -> None:
    result = parse(argv)
    assert isinstance(result, argparse.Namespace) or result in (0, 2)


@given(text=st.text(max_size=20) | st.from_regex(r"\d{1,20}[smhd]", fullmatch=True))
def test_any_offset_or_time_text_parses_or_is_a_usage_error(text: str) -> None:
    for parser in (Position.parse, parse_since):
        try:
            parser(text)
        except UsageError:
            pass
