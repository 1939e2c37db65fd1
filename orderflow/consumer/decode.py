"""Input records to orders, or to the reason they go to the dead-letter topic. Pure logic."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from orderflow.contracts.events import OrderCreated


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Why a record is not a valid `order.created` v1 (becomes dead-letter headers)."""

    reason: str       # metric label: empty | oversized | invalid_utf8 | invalid_json | schema
    error_class: str
    message: str


def decode_order_created(value: bytes | None, max_bytes: int) -> OrderCreated | Undecodable:
    if not value:
        return Undecodable("empty", "EmptyRecord", "record has no value")
    if len(value) > max_bytes:
        return Undecodable("oversized", "RecordTooLarge",
                           f"record is {len(value)} bytes, more than the limit of {max_bytes}")
    try:
        return OrderCreated.model_validate_json(value)
    except ValidationError as exc:
        return _classify(value, exc)


def _classify(value: bytes, exc: ValidationError) -> Undecodable:
    # The fast path parses and validates in one go; only a failure pays for telling apart
    # bad bytes, bad JSON and a bad event.
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        return Undecodable("invalid_utf8", "UnicodeDecodeError", f"not UTF-8: {err}")
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return Undecodable("invalid_json", "JSONDecodeError", f"not JSON: {err}")
    except RecursionError as err:  # nesting deeper than the stack: a few KB of "[" do it
        return Undecodable("invalid_json", "RecursionError", f"not JSON: {err}")
    return Undecodable("schema", "ValidationError", describe_validation_error(exc))


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """`order.lines.0.quantity: Input should be greater than or equal to 1; ...`"""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "event"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "not a valid order.created v1: " + "; ".join(parts)
