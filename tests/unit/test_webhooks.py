"""The webhook endpoint's pure parts: the signature check and the hint a delivery gives.
Property-based: no body, signature or JSON shape makes them raise, and only the HMAC of the
exact body under the exact token passes."""

from __future__ import annotations

import hashlib
import hmac
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.consumer.webhooks import (
    REMEMBER_FOR_S,
    REMEMBERED_DELIVERIES,
    DeliveryLedger,
    delivery_digest,
    hint_from_delivery,
    looks_like_signature,
    signature_valid,
)
from orderflow.contracts import control

TOKEN = b"whsec-unit"


def sign(body: bytes, token: bytes = TOKEN) -> str:
    return hmac.new(token, body, hashlib.sha256).hexdigest()


def test_only_the_hmac_of_the_exact_body_under_the_token_passes() -> None:
    body = b'{"event":"order.completed","data":{"id":7}}'
    assert signature_valid(TOKEN, body, sign(body))
    assert signature_valid(TOKEN, body, sign(body).upper())
    assert signature_valid(TOKEN, body, "sha256=" + sign(body))
    assert not signature_valid(TOKEN, body + b" ", sign(body))
    assert not signature_valid(TOKEN, body, sign(body, b"other"))
    assert not signature_valid(TOKEN, body, None)
    assert not signature_valid(TOKEN, body, "")
    assert not signature_valid(TOKEN, body, sign(body)[:-1])
    assert not signature_valid(TOKEN, body, "\u00e9" * 64)


@settings(max_examples=300)
@given(body=st.binary(max_size=300), signature=st.one_of(st.none(), st.text(max_size=80)))
def test_no_guess_passes_and_nothing_raises(body: bytes, signature: str | None) -> None:
    assert signature_valid(TOKEN, body, signature) is (signature is not None and hmac.compare_digest(
        signature.strip().lower().removeprefix("sha256=").encode("ascii", "replace"),
        sign(body).encode()))


def test_an_order_event_names_smake_id_and_ours() -> None:
    body = json.dumps({"event": "order.completed", "data": {
        "id": 1234, "external_identifier": "A-1", "state": "completed"}}).encode()
    hint = hint_from_delivery(body, 100.0)
    assert isinstance(hint, control.Hint)
    assert (hint.vendor_order_ref, hint.order_id, hint.event) == ("1234", "A-1", "order.completed")


def test_a_shipment_event_names_its_order() -> None:
    for shipment in ({"id": 9, "order": 1234}, {"id": 9, "order_id": 1234},
                     {"id": 9, "order": {"id": 1234, "external_identifier": "A-1"}}):
        hint = hint_from_delivery(json.dumps({"event": "shipment.prepared",
                                              "resource": shipment}).encode(), 1.0)
        assert isinstance(hint, control.Hint) and hint.vendor_order_ref == "1234"


def test_other_events_and_bodies_give_no_hint() -> None:
    assert hint_from_delivery(b"[1,2]", 1.0) == "unreadable"
    assert hint_from_delivery(b"{", 1.0) == "unreadable"
    assert hint_from_delivery(b'{"event":"variant.created","data":{"id":1}}', 1.0) == "ignored"
    assert hint_from_delivery(b'{"event":"order.completed","data":{"state":"x"}}', 1.0) == "ignored"
    too_long = json.dumps({"event": "order.failed", "data": {"id": "9" * 200}}).encode()
    assert hint_from_delivery(too_long, 1.0) == "ignored"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["event", "type", "data", "resource", "order", "id", "order_id",
                         "external_identifier", "state", "x"]), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=500)
@given(value=json_values)
def test_any_json_gives_a_hint_or_a_word_and_the_hint_round_trips(value: object) -> None:
    result = hint_from_delivery(json.dumps(value).encode(), 5.0)
    if isinstance(result, str):
        assert result in ("unreadable", "ignored")
        return
    assert result.vendor_order_ref or result.order_id
    assert control.parse(result.model_dump_json().encode()) == result


@settings(max_examples=300)
@given(raw=st.binary(max_size=200))
def test_control_records_parse_or_refuse_with_value_error(raw: bytes) -> None:
    try:
        control.parse(raw)
    except ValueError:
        pass


def test_the_resource_is_found_in_any_usual_envelope() -> None:
    order = {"id": 55, "external_identifier": "B-2", "state": "completed"}
    for delivery in ({"event": "order.completed", "data": order},
                     {"event": "order.completed", "data": {"object": order}},
                     {"type": "order.completed", "payload": {"resource": order}},
                     {"topic": "order.completed", "order": order},
                     {"event": "order.completed", **order},
                     {"event": "order.completed", "data": {"id": "evt-1", "attributes": order}}):
        hint = hint_from_delivery(json.dumps(delivery).encode(), 1.0)
        assert isinstance(hint, control.Hint), delivery
        assert (hint.vendor_order_ref, hint.order_id) == ("55", "B-2"), delivery


def test_an_envelope_with_its_own_id_gives_the_order_inside_it() -> None:
    """`{"id": "evt_1", "order": {...}}` was taken for the resource: the hint named the
    delivery, and no owner could ever serve it."""
    order = {"id": 77, "external_identifier": "C-3", "state": "prepared"}
    for delivery in ({"id": "evt_1", "event": "order.prepared", "order": order},
                     {"id": "evt_1", "event": "order.prepared", "data": {"id": "d", "order": order}}):
        hint = hint_from_delivery(json.dumps(delivery).encode(), 1.0)
        assert isinstance(hint, control.Hint), delivery
        assert (hint.vendor_order_ref, hint.order_id) == ("77", "C-3"), delivery


def test_text_that_no_utf8_record_can_hold_is_unreadable() -> None:
    """A signed delivery whose JSON held a lone surrogate got a 500, and Smake redelivered
    it for 48 hours: it is a 400 (unreadable), as any text that is not UTF-8."""
    assert hint_from_delivery(b'{"event":"order.completed","data":{"id":1}}\xff', 1.0) == "unreadable"
    for lone in (b'{"event":"order.\\ud800","data":{"id":1}}',
                 b'{"event":"order.completed","data":{"id":1,"note":["\\udfff"]}}'):
        assert hint_from_delivery(lone, 1.0) == "unreadable"


def test_one_delivery_makes_one_key_on_every_replica() -> None:
    body = b'{"event":"order.completed","data":{"id":1}}'
    first, second = hint_from_delivery(body, 1.0), hint_from_delivery(body, 999.0)
    assert isinstance(first, control.Hint) and isinstance(second, control.Hint)
    assert first.key() == second.key() == control.hint_key("smake", delivery_digest(body))


def test_the_ledger_claims_once_and_learns_from_keys_read() -> None:
    now = [1_000_000.0]
    ledger = DeliveryLedger(lambda: now[0])
    assert ledger.claim("a" * 32) and not ledger.claim("a" * 32)
    ledger.release("a" * 32)
    assert ledger.claim("a" * 32)
    ledger.note_key(control.hint_key("smake", "b" * 32), written_at=now[0] - 60)
    assert "b" * 32 in ledger and not ledger.claim("b" * 32)
    ledger.note_key(control.hint_key("smake", "c" * 32), written_at=now[0] - REMEMBER_FOR_S - 1)
    assert "c" * 32 not in ledger, "older than Smake's 48 hours of redelivery"
    ledger.note_key(b"hint/smake/1234", written_at=now[0])  # an older release's key
    assert len(ledger) == 2
    now[0] += REMEMBER_FOR_S + 1
    ledger.claim("d" * 32)
    assert len(ledger) == 1, "what is older than the window goes"


def test_the_ledger_is_bounded() -> None:
    ledger = DeliveryLedger(lambda: 0.0)
    for n in range(REMEMBERED_DELIVERIES + 10):
        ledger.claim(f"{n:032x}")
    assert len(ledger) == REMEMBERED_DELIVERIES and f"{0:032x}" not in ledger


@settings(max_examples=300)
@given(signature=st.one_of(st.none(), st.text(max_size=80), st.from_regex(r"[0-9a-f]{64}")))
def test_only_a_hex_digest_looks_like_a_signature(signature: str | None) -> None:
    plain = (signature or "").strip()
    plain = plain[len("sha256="):] if plain.lower().startswith("sha256=") else plain
    expected = len(plain) == 64 and all(c in "0123456789abcdefABCDEF" for c in plain)
    assert looks_like_signature(signature) is expected
