"""Input records to orders, or to the reason they go to the dead-letter topic. Pure logic.

`decode_input` never raises, whatever the bytes: one bad record must not stop its
partition (intake still guards against a bug here, see `Intake._verdict`).

The JSON is read strictly, as RFC 8259 writes it, before the event is validated: a record
that another reader could take differently from us is refused rather than guessed at.
- `NaN`, `Infinity` and `-Infinity` are not JSON (Python's reader takes them by default);
- a key repeated in one object is refused: readers disagree on which copy wins, so the
  same bytes could be two different orders to two consumers;
- an integer of more than `MAX_INTEGER_DIGITS` digits is refused (Python's own guard against
  quadratic conversion raises a bare `ValueError` past 4,300 digits, which once escaped and
  stopped the intake loop), and so is a number beyond a double's range (`1e999`);
- nesting past the interpreter's recursion limit is refused (a few KB of `[` do it), and
  so is nesting past the validator's own limit (about 240 levels; an order needs five);
- a lone surrogate escape (`"\\ud800"`) is refused: it is no character, and no UTF-8
  writer (our producer, a vendor's JSON parser) can carry it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from orderflow.contracts.events import OrderCancelled, OrderCreated

InputEvent = OrderCreated | OrderCancelled

# No order field holds an integer anywhere near this long (quantities, variant ids).
MAX_INTEGER_DIGITS = 100


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Why a record is not a valid `order.created` v1 (becomes dead-letter headers)."""

    reason: str       # metric label: empty | oversized | invalid_utf8 | invalid_json | schema
    error_class: str
    message: str


class StrictJSONError(ValueError):
    """Valid for Python's lenient reader, but not strict JSON."""


def decode_input(value: bytes | None, max_bytes: int) -> InputEvent | Undecodable:
    """An input record as `order.cancelled` v1 when its `event_type` says so, else as
    `order.created` v1 (whose errors a record of any other type is then told)."""
    if not value:
        return Undecodable("empty", "EmptyRecord", "record has no value")
    if len(value) > max_bytes:
        return Undecodable("oversized", "RecordTooLarge",
                           f"record is {len(value)} bytes, more than the limit of {max_bytes}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        return Undecodable("invalid_utf8", "UnicodeDecodeError", f"not UTF-8: {err}")
    try:
        data = read_strict_json(text)
    except RecursionError:
        return Undecodable("invalid_json", "RecursionError",
                           "not JSON: nested deeper than the reader's recursion limit")
    except ValueError as err:  # JSONDecodeError, StrictJSONError, int conversion limits
        return Undecodable("invalid_json", type(err).__name__, f"not JSON: {err}")
    model: type[OrderCreated] | type[OrderCancelled] = OrderCreated
    if isinstance(data, dict) and data.get("event_type") == "order.cancelled":
        model = OrderCancelled
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            # The strict reader took it but the validator's parser did not (a lone
            # surrogate escape, nesting past its own limit): bad JSON, not a bad event.
            return Undecodable("invalid_json", "JSONDecodeError",
                               f"not JSON: {describe_validation_error(exc, prefix='')}")
        kind = "order.cancelled" if model is OrderCancelled else "order.created"
        return Undecodable("schema", "ValidationError",
                           describe_validation_error(exc, prefix=f"not a valid {kind} v1: "))


def read_strict_json(text: str) -> Any:
    """`json.loads`, refusing what RFC 8259 does not allow or what readers disagree on
    (see the module docstring). Raises ValueError (or RecursionError) naming the problem."""
    return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant,
                      parse_int=_bounded_int, parse_float=_finite_float)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"key {_shown(key)} appears more than once in one object")
            seen.add(key)
    return members


def _no_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: a number no double can hold
        raise StrictJSONError(f"{_shown(text)} is out of range for a JSON number")
    return value


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise StrictJSONError(f"an integer of {len(digits.lstrip('-'))} digits, more than "
                              f"{MAX_INTEGER_DIGITS}")
    return int(digits)


def _shown(text: str, limit: int = 60) -> str:
    shown = repr(text[:limit])
    return shown + ("..." if len(text) > limit else "")


def describe_validation_error(exc: ValidationError, limit: int = 5,
                              prefix: str = "not a valid order.created v1: ") -> str:
    """`order.lines.0.quantity: Input should be greater than or equal to 1; ...`

    The input itself is never repeated: it may be megabytes, and it is in the dead letter."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "event"
        parts.append(f"{where[:120]}: {error['msg'][:200]}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return prefix + "; ".join(parts)
