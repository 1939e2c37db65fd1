"""Decoding input records: a valid order.created v1, or the reason (metric label), error class
and message that go into the dead-letter headers. It never raises: one bad record must not
stop its partition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orderflow.consumer.decode import Undecodable, decode_order_created
from orderflow.contracts.events import OrderCreated

FIXTURES = Path(__file__).parents[1] / "fixtures"
VALID = (FIXTURES / "order-created.json").read_bytes()
LIMIT = 1_048_576


def undecodable(value: bytes | None, limit: int = LIMIT) -> Undecodable:
    decoded = decode_order_created(value, limit)
    assert isinstance(decoded, Undecodable), decoded
    return decoded


@pytest.mark.parametrize("name", ["order-created.json", "order-created-minimal.json"])
def test_a_valid_event_decodes(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    decoded = decode_order_created(raw, LIMIT)
    assert isinstance(decoded, OrderCreated)
    assert decoded == OrderCreated.model_validate_json(raw)


def test_a_record_exactly_at_the_limit_is_read() -> None:
    assert isinstance(decode_order_created(VALID, len(VALID)), OrderCreated)


@pytest.mark.parametrize("value", [None, b""])
def test_empty(value: bytes | None) -> None:
    assert undecodable(value) == Undecodable("empty", "EmptyRecord", "record has no value")


def test_oversized_is_refused_unread() -> None:
    why = undecodable(VALID, limit=len(VALID) - 1)
    assert (why.reason, why.error_class) == ("oversized", "RecordTooLarge")
    assert str(len(VALID)) in why.message and str(len(VALID) - 1) in why.message


@pytest.mark.parametrize("value", [b"\xff\xfe{}", b'{"event_id": "\xc3\x28"}', VALID[:-3] + b"\x80}\n}"])
def test_invalid_utf8(value: bytes) -> None:
    why = undecodable(value)
    assert (why.reason, why.error_class) == ("invalid_utf8", "UnicodeDecodeError")
    assert why.message.startswith("not UTF-8:")


@pytest.mark.parametrize("value", [b"{", b"not json", b"{'single': 'quotes'}", VALID[:-10],
                                   b"\xef\xbb\xbf" + VALID])
def test_invalid_json(value: bytes) -> None:
    why = undecodable(value)
    assert (why.reason, why.error_class) == ("invalid_json", "JSONDecodeError")
    assert why.message.startswith("not JSON:")


@pytest.mark.parametrize("value", [b"[" * 100_000, b'{"a":' * 50_000])
def test_nesting_deeper_than_the_stack_is_invalid_json_not_a_crash(value: bytes) -> None:
    why = undecodable(value)
    assert why.reason == "invalid_json"
    assert why.error_class == "RecursionError"


def test_wrong_schema_names_the_fields() -> None:
    event = json.loads(VALID)
    event["order"]["lines"][0]["quantity"] = 0
    event["order"]["total"] = 57.2
    why = undecodable(json.dumps(event).encode())
    assert (why.reason, why.error_class) == ("schema", "ValidationError")
    assert why.message.startswith("not a valid order.created v1: ")
    assert "order.total" in why.message
    assert "order.lines.0.quantity" in why.message


@pytest.mark.parametrize("value", [b"[]", b"42", b'"order"', b"null", b"{}",
                                   b'{"event_type": "order.updated"}'])
def test_json_that_is_not_an_order_created_event(value: bytes) -> None:
    why = undecodable(value)
    assert (why.reason, why.error_class) == ("schema", "ValidationError")


def test_many_errors_are_summed_up_in_one_bounded_message() -> None:
    event = json.loads(VALID)
    event["order"]["lines"] = [{"line_id": str(i)} for i in range(50)]
    why = undecodable(json.dumps(event).encode())
    assert why.reason == "schema"
    assert "more" in why.message
    assert len(why.message) < 1000
