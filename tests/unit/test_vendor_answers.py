"""What the adapters' shared base makes of a vendor's answer before any adapter reads it:
headers looked up without regard to case, texts made publishable, ids that cannot go into a
URL path refused, and orders a vendor's format cannot carry refused rather than retried."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orderflow.adapters.errors import VendorRejected, VendorThrottled, VendorUnavailable, build_or_refuse
from orderflow.adapters.http import HttpAnswer, default_error_for, path_safe_ref
from orderflow.adapters.outcomes import Observation
from orderflow.adapters.zakeke.answers import parse_token_answer
from orderflow.adapters.zakeke.request import zakeke_order_date
from orderflow.contracts.events import Order, Vendor, VendorStatus


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER", "rEtRy-AfTeR"])
def test_retry_after_is_read_whatever_its_case(name: str) -> None:
    error = default_error_for(Vendor.SMAKE, "get_order", HttpAnswer(429, {name: "7"}, b""))
    assert isinstance(error, VendorThrottled)
    assert error.retry_after == 7.0


def test_a_5xx_keeps_its_retry_after_too() -> None:
    error = default_error_for(Vendor.SMAKE, "get_order", HttpAnswer(503, {"retry-after": "3"}, b""))
    assert isinstance(error, VendorUnavailable) and error.retry_after == 3.0


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a": ' + b"9" * 5_000 + b"}",
                                  b"\xff\xfe", b"not json"])
def test_an_unreadable_body_is_a_value_error_never_something_else(body: bytes) -> None:
    with pytest.raises(ValueError):
        HttpAnswer(200, {}, body).json()
    assert HttpAnswer(422, {}, body).message()  # and a message can always be made of it


def test_observation_texts_are_made_publishable_and_bounded() -> None:
    observation = Observation(VendorStatus.FAILED, vendor_order_ref="r" * 5_000,
                              vendor_state="\ud800x", reason="m" * 1_000_000,
                              tracking_numbers=tuple(str(n) for n in range(1_000)))
    assert observation.vendor_order_ref is not None and len(observation.vendor_order_ref) == 1_000
    assert observation.vendor_state == "?x"
    assert observation.reason is not None and len(observation.reason) == 1_000
    assert len(observation.tracking_numbers) == 50
    for text in (observation.vendor_order_ref, observation.vendor_state, observation.reason):
        text.encode("utf-8")  # no lone surrogate left


@pytest.mark.parametrize(("value", "expected"), [
    (137, "137"), ("137", "137"), ("a b", "a b"), ("%2e%2e", "%2e%2e"), ("a/b", "a/b"),
    (".", None), ("..", None), ("", None), (None, None), (True, None), (1.5, None),
    ("x" * 129, None), ("a\nb", None), ("a\x00b", None), ("a\x7fb", None), ({"id": 1}, None),
])
def test_which_vendor_ids_may_go_into_a_url_path(value: object, expected: str | None) -> None:
    assert path_safe_ref(value) == expected


def order_placed_at(placed_at: datetime) -> Order:
    return Order(order_id="O-1", placed_at=placed_at, currency="EUR", total=Decimal("1.00"),
                 customer={"email": "a@example.org"},
                 lines=[{"line_id": "1", "sku": "S", "quantity": 1, "unit_price": "1.00"}])


@pytest.mark.parametrize("placed_at", [
    datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))),
])
def test_a_date_zakeke_cannot_carry_rejects_the_pair_with_the_reason(placed_at: datetime) -> None:
    order = order_placed_at(placed_at)
    with pytest.raises(VendorRejected) as refused:
        build_or_refuse(Vendor.ZAKEKE, "register_order", lambda: zakeke_order_date(order))
    assert "cannot be written in Zakeke's format" in refused.value.message
    assert not refused.value.retriable


@pytest.mark.parametrize("token", ["a\nb", "a b", "tok\x00", "é", "x" * 9_000])
def test_a_token_that_cannot_go_into_a_header_is_an_unreadable_answer(token: str) -> None:
    with pytest.raises(ValueError):
        parse_token_answer({"access_token": token, "expires_in": 60})
