"""Decoding input records: a valid order.created v1, or the reason (metric label), error class
and message that go into the dead-letter headers. It never raises: one bad record must not
stop its partition."""

from __future__ import annotations

import json

import pytest
from testkit import FIXTURES

from orderflow.consumer.decode import Undecodable, decode_input
from orderflow.contracts.events import OrderCreated

VALID = (FIXTURES / "order-created.json").read_bytes()
LIMIT = 1_048_576


def undecodable(value: bytes | None, limit: int = LIMIT) -> Undecodable:
    decoded = decode_input(value, limit)
    assert isinstance(decoded, Undecodable), decoded
    return decoded


@pytest.mark.parametrize("name", ["order-created.json", "order-created-minimal.json"])
def test_a_valid_event_decodes(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    decoded = decode_input(raw, LIMIT)
    assert isinstance(decoded, OrderCreated)
    assert decoded == OrderCreated.model_validate_json(raw)


def test_a_record_exactly_at_the_limit_is_read() -> None:
    assert isinstance(decode_input(VALID, len(VALID)), OrderCreated)


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


# ----------------------------------------------------------------------------- hostile JSON


def with_member(text: str) -> bytes:
    """The full example with one more top-level member, given as raw JSON text."""
    return VALID.rstrip()[:-1] + b', "extra": ' + text.encode() + b"}"


@pytest.mark.parametrize(("member", "error_class", "words"), [
    ("9" * 5_000, "StrictJSONError", "5000 digits"),       # past Python's 4,300-digit guard
    ("-" + "9" * 101, "StrictJSONError", "101 digits"),
    ("NaN", "StrictJSONError", "NaN is not a JSON number"),
    ("Infinity", "StrictJSONError", "Infinity"),
    ("-Infinity", "StrictJSONError", "-Infinity"),
    ("1e999", "StrictJSONError", "out of range"),
    ('"\\ud800"', "JSONDecodeError", "not JSON"),              # a lone surrogate escape
    ('["\\udc00x"]', "JSONDecodeError", "not JSON"),
])
def test_what_strict_json_refuses_anywhere_in_the_record(member: str, error_class: str,
                                                          words: str) -> None:
    why = undecodable(with_member(member))
    assert (why.reason, why.error_class) == ("invalid_json", error_class)
    assert words in why.message


def test_a_repeated_key_is_refused_naming_it() -> None:
    raw = VALID.rstrip()[:-1] + b', "order": {"order_id": "OTHER"}}'
    why = undecodable(raw)
    assert (why.reason, why.error_class) == ("invalid_json", "StrictJSONError")
    assert "'order' appears more than once" in why.message


def test_a_surrogate_pair_is_a_character_and_is_fine() -> None:
    assert isinstance(decode_input(with_member('"\\ud83d\\ude00"'), LIMIT), OrderCreated)


def test_an_integer_of_a_hundred_digits_is_still_json() -> None:
    assert isinstance(decode_input(with_member("9" * 100), LIMIT), OrderCreated)


@pytest.mark.parametrize(("field", "value"), [
    ("order_id", "."), ("order_id", ".."), ("order_id", "A\x00B"), ("order_id", "A\nB"),
])
def test_ids_that_would_change_a_vendor_url_are_refused_naming_the_field(field: str,
                                                                          value: str) -> None:
    event = json.loads(VALID)
    event["order"][field] = value
    why = undecodable(json.dumps(event).encode())
    assert why.reason == "schema"
    assert f"order.{field}" in why.message and "vendor URL" in why.message


@pytest.mark.parametrize("field", ["design_id", "modification_id"])
def test_design_ids_that_would_change_a_vendor_url_are_refused(field: str) -> None:
    event = json.loads(VALID)
    event["order"]["lines"][0]["customization"][field] = ".."
    why = undecodable(json.dumps(event).encode())
    assert why.reason == "schema"
    assert f"order.lines.0.customization.zakeke.{field}" in why.message


def test_ids_with_slashes_spaces_and_percent_signs_are_kept_as_they_are() -> None:
    # They are percent-encoded into the path, so they are not refused.
    event = json.loads(VALID)
    event["order"]["order_id"] = "A/B %2e%2e ü"
    decoded = decode_input(json.dumps(event).encode(), LIMIT)
    assert isinstance(decoded, OrderCreated)
    assert decoded.order.order_id == "A/B %2e%2e ü"


def test_the_message_never_repeats_a_long_input() -> None:
    event = json.loads(VALID)
    event["order"]["currency"] = "X" * 100_000
    why = undecodable(json.dumps(event).encode())
    assert why.reason == "schema"
    assert len(why.message) < 1_000


def test_an_order_cancelled_is_told_apart_by_its_event_type() -> None:
    from orderflow.contracts.events import OrderCancelled

    cancel = {"event_id": "c-1", "event_type": "order.cancelled", "schema_version": 1,
              "occurred_at": "2026-11-22T11:02:10Z", "order_id": "SHOP-100234",
              "reason": "customer asked to cancel"}
    decoded = decode_input(json.dumps(cancel).encode(), LIMIT)
    assert isinstance(decoded, OrderCancelled) and decoded.reason == "customer asked to cancel"
    too_long = decode_input(json.dumps({**cancel, "reason": "x" * 501}).encode(), LIMIT)
    assert isinstance(too_long, Undecodable)
    assert too_long.message.startswith("not a valid order.cancelled v1: reason:")
    unsafe = decode_input(json.dumps({**cancel, "order_id": ".."}).encode(), LIMIT)
    assert isinstance(unsafe, Undecodable) and "order_id" in unsafe.message
