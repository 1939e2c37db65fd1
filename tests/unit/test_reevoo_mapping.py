"""Reevoo: the customer order body against the page's attribute table and example (date,
price and metadata key formats), the reading of every answer, and the submit flow over a
scripted fake transport."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from testkit import an_event, an_order

from orderflow.adapters.errors import (
    VendorAuthFailed,
    VendorError,
    VendorRejected,
    VendorThrottled,
    VendorUnavailable,
)
from orderflow.adapters.http import HttpAnswer, MockTransport, VendorHttp
from orderflow.adapters.outcomes import Observation, PairState
from orderflow.adapters.reevoo import (
    ReevooAdapter,
    observation_from_accepted,
    reevoo_date,
    reevoo_error,
    reevoo_language_locale,
    reevoo_metadata,
    reevoo_metadata_key,
    reevoo_order_body,
    reevoo_price,
)
from orderflow.config.settings import ReevooSettings
from orderflow.contracts.events import Vendor, VendorStatus

API_KEY, API_SECRET = "rv-key-not-real", "rv-secret-not-real"
SETTINGS = ReevooSettings(
    base_url="https://api.reevoocloud.com",
    api_key=SecretStr(API_KEY),
    api_secret=SecretStr(API_SECRET),
    trkref="trkref123",
)

# The page's example body, verbatim (including its `cutomer_ref` spelling).
PAGE_EXAMPLE: dict[str, Any] = {
    "trkref": "TRKREF123",
    "order_ref": "ABC123",
    "order_date": "10-12-2014",
    "fulfilment_date": "24-12-2014",
    "language": "en",
    "locale": "en-GB",
    "customer": {
        "email": "[email protected]",
        "cutomer_ref": "1122",
        "title": "MR",
        "first_name": "John",
        "country": "GB",
    },
    "order_items": [
        {"sku": "PROD1", "price": "55,99", "currency": "GBP",
         "metadata": {"field_1": "Value 1", "field_2": "Value 2"}},
        {"sku": "PROD2", "price": "10", "currency": "GBP",
         "metadata": {"field_1": "Value 1", "field_2": "Value 2"}},
    ],
}
# The page's attribute table.
PAGE_ATTRIBUTES = {
    "trkref", "order_ref", "order_date", "fulfilment_date", "language", "locale", "customer",
    "order_items",
}
PAGE_CUSTOMER_ATTRIBUTES = {"email", "customer_ref", "title", "first_name", "country"}
PAGE_ITEM_ATTRIBUTES = {"sku", "price", "currency", "metadata"}

DATE_FORMAT = re.compile(r"^\d{2}-\d{2}-\d{4}$")  # dd-mm-yyyy
PRICE_FORMAT = re.compile(r"^\d+(,\d+)?$")        # "just digits and a comma"
METADATA_KEY = re.compile(r"^[a-z0-9]+$")  # "Field names can contain only [a-z0-9] characters"


# ----------------------------------------------------------------------------- body


def test_body_from_the_contract_example_field_by_field() -> None:
    body = reevoo_order_body(an_order(), "trkref123")

    assert set(body) <= PAGE_ATTRIBUTES
    assert body["trkref"] == "TRKREF123"
    assert body["order_ref"] == "SHOP-100234"
    assert body["order_date"] == "22-11-2026"  # placed_at 2026-11-22T10:15:29Z
    assert body["language"] == "en"
    assert body["locale"] == "en-GB"
    assert body["customer"] == {
        "email": "john@example.com",
        "customer_ref": "C-1122",
        "title": "Mr",
        "first_name": "John",
        "country": "GB",
    }
    assert set(body["customer"]) <= PAGE_CUSTOMER_ATTRIBUTES
    assert body["order_items"] == [
        {"sku": "TSHIRT-BLK-M", "price": "12,00", "currency": "EUR",
         "metadata": {"colour": "black"}},
        {"sku": "MUG-01", "price": "9,90", "currency": "EUR"},
        {"sku": "CAP-02", "price": "15,00", "currency": "EUR"},
    ]


def test_body_follows_the_formats_of_the_page_example() -> None:
    body = reevoo_order_body(an_order(), "trkref123")

    for ours, page in ((body, PAGE_EXAMPLE),):
        assert DATE_FORMAT.match(ours["order_date"]) and DATE_FORMAT.match(page["order_date"])
        assert ours["trkref"] == ours["trkref"].upper()
        assert len(ours["language"]) == len(page["language"]) == 2
        assert re.match(r"^[a-z]{2}-[A-Z]{2}$", ours["locale"])
    for item in (*body["order_items"], *PAGE_EXAMPLE["order_items"]):
        assert set(item) <= PAGE_ITEM_ATTRIBUTES
        assert PRICE_FORMAT.match(item["price"])
    # Ours keep to the table's [a-z0-9] (the page's own example writes `field_1`).
    assert all(METADATA_KEY.match(key) for item in body["order_items"]
               for key in item.get("metadata", {}))


def test_customer_ref_is_spelled_as_in_the_attribute_table() -> None:
    customer = reevoo_order_body(an_order(), "T")["customer"]

    assert customer["customer_ref"] == "C-1122"
    assert "cutomer_ref" not in customer


def test_minimal_order_leaves_out_what_it_does_not_have() -> None:
    body = reevoo_order_body(an_order("order-created-minimal.json"), "abc-xyz")

    assert body == {
        "trkref": "ABC-XYZ",
        "order_ref": "SHOP-100235",
        "order_date": "22-11-2026",
        "customer": {"email": "ann@example.org"},
        "order_items": [{"sku": "BOOK-9", "price": "10,00", "currency": "GBP"}],
    }


def test_one_item_per_line_whatever_the_quantity() -> None:
    items = reevoo_order_body(an_order(), "T")["order_items"]

    assert [item["sku"] for item in items] == ["TSHIRT-BLK-M", "MUG-01", "CAP-02"]


@pytest.mark.parametrize(
    ("placed_at", "expected"),
    [
        ("2014-12-10T09:00:00Z", "10-12-2014"),  # the page's example date
        ("2026-01-05T00:00:00+00:00", "05-01-2026"),
        # The date the checkout recorded, in the event's own offset (UTC is already the 6th).
        ("2026-03-05T23:30:00-05:00", "05-03-2026"),
    ],
)
def test_order_date_is_dd_mm_yyyy(placed_at: str, expected: str) -> None:
    assert reevoo_date(an_order(placed_at=placed_at)) == expected


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en-GB", ("en", "en-GB")),
        ("de-DE", ("de", "de-DE")),
        ("en_gb", ("en", "en-GB")),
        ("EN-gb", ("en", "en-GB")),
        ("de", ("de", None)),
        ("zh-Hant-TW", ("zh", "zh-TW")),
        ("english", (None, None)),
        ("en-GB-oxendict", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_language_and_locale(locale: str | None, expected: tuple[str | None, str | None]) -> None:
    assert reevoo_language_locale(locale) == expected


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("55.99", "55,99"),  # the page's examples
        ("10", "10"),
        ("12.00", "12,00"),
        ("9.90", "9,90"),
        ("0.5", "0,5"),
        ("0", "0"),
        ("1234567.89", "1234567,89"),
        ("-0.00", "0,00"),
        ("-1.00", None),  # no digits-and-comma form: left out, price is optional
    ],
)
def test_price_is_digits_and_a_comma(amount: str, expected: str | None) -> None:
    price = reevoo_price(Decimal(amount))

    assert price == expected
    assert price is None or PRICE_FORMAT.match(price)


def test_a_line_without_a_price_form_sends_no_price_nor_currency() -> None:
    event_lines = [{"line_id": "1", "sku": "REFUND-1", "quantity": 1, "unit_price": "-5.00"}]
    items = reevoo_order_body(an_order("order-created-minimal.json", lines=event_lines),
                              "T")["order_items"]

    assert items == [{"sku": "REFUND-1"}]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("field_1", "field1"),  # the page's example key, made right by its table too
        ("colour", "colour"),
        ("Colour", "colour"),
        ("Gift Wrap!", "giftwrap"),
        ("size-EU", "sizeeu"),
        ("  engraving text  ", "engravingtext"),
        ("Größe", "groe"),
        ("café", "cafe"),
        ("a..b--c", "abc"),
        ("_private_", "private"),
        ("!!!", ""),
    ],
)
def test_metadata_key_reduction(key: str, expected: str) -> None:
    reduced = reevoo_metadata_key(key)

    assert reduced == expected
    assert reduced == "" or METADATA_KEY.match(reduced)


def test_metadata_collisions_keep_the_first_key_and_empty_keys_are_dropped() -> None:
    metadata = {"Colour": "black", "colour": "white", "Gift wrap": "yes", "gift-wrap": "no",
                "%%": "lost", "Engraving": "J.D."}

    assert reevoo_metadata(metadata) == {"colour": "black", "giftwrap": "yes",
                                         "engraving": "J.D."}
    assert reevoo_metadata(None) == {}


def test_line_metadata_reaches_the_item_with_reduced_keys() -> None:
    lines = [{"line_id": "1", "sku": "BOOK-9", "quantity": 1, "unit_price": "10.00",
              "metadata": {"Gift Wrap": "yes", "field_1": "Value 1"}}]
    item = reevoo_order_body(an_order("order-created-minimal.json", lines=lines),
                             "T")["order_items"][0]

    assert item["metadata"] == {"giftwrap": "yes", "field1": "Value 1"}


# ----------------------------------------------------------------------------- answers


PAGE_202 = b'{"status": 202, "id": "3b9c1e2a-5f4d-4c7b-9a1e-2d3f4a5b6c7d", ' \
           b'"message": "Customer order accepted"}'


def test_202_is_completed_with_reevoos_uuid() -> None:
    observation = observation_from_accepted(HttpAnswer(202, {}, PAGE_202))

    # The 202 has no state word: none is made up.
    assert observation == Observation(
        VendorStatus.COMPLETED,
        vendor_order_ref="3b9c1e2a-5f4d-4c7b-9a1e-2d3f4a5b6c7d",
    )


@pytest.mark.parametrize("body", [b"", b"accepted", b"[]", b'{"id": 5}', b'{"status": 202}'])
def test_a_202_without_a_readable_id_is_still_completed(body: bytes) -> None:
    # Never a transient error after a 202: the engine would send the order again.
    observation = observation_from_accepted(HttpAnswer(202, {}, body))

    assert observation.status is VendorStatus.COMPLETED
    assert observation.vendor_order_ref is None


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, VendorRejected),
        (401, VendorAuthFailed),
        (403, VendorRejected),
        (404, VendorUnavailable),
        (405, VendorUnavailable),
        (409, VendorRejected),
        (413, VendorRejected),
        (422, VendorRejected),
        (429, VendorThrottled),
        (500, VendorUnavailable),
        (502, VendorUnavailable),
        (503, VendorUnavailable),
        (504, VendorUnavailable),
        (301, VendorUnavailable),
    ],
)
def test_every_error_status_maps_to_one_error_class(
    status: int, error_class: type[VendorError]
) -> None:
    error = reevoo_error("submit_order", HttpAnswer(status, {}, b'{"message": "no"}'))

    assert type(error) is error_class
    assert error.vendor is Vendor.REEVOO and error.operation == "submit_order"
    assert error.status == status
    # Only a refusal is final; everything else may be sent again (nothing was accepted).
    assert error.retriable is (error_class is not VendorRejected)


@pytest.mark.parametrize("body", [b'{"message": "Invalid TRKREF supplied"}',
                                  b"Invalid TRKREF supplied"])
def test_400_is_rejected_with_reevoos_message(body: bytes) -> None:
    error = reevoo_error("submit_order", HttpAnswer(400, {}, body))

    assert isinstance(error, VendorRejected)
    assert error.message == "Invalid TRKREF supplied"


def test_422_is_rejected_with_message_and_errors() -> None:
    body = json.dumps({"message": "Customer order rejected",
                       "errors": ["order_date must be dd-mm-yyyy"]}).encode()
    error = reevoo_error("submit_order", HttpAnswer(422, {}, body))

    assert isinstance(error, VendorRejected)
    assert "Customer order rejected" in error.message
    assert "order_date must be dd-mm-yyyy" in error.message


def test_403_means_the_feature_is_not_enabled_and_is_not_retried() -> None:
    """Vendor notes: "403 `Access denied` when the feature is not enabled for the
    organisation": no retry changes that, so the pair ends rejected, saying so."""
    error = reevoo_error("submit_order", HttpAnswer(403, {}, b'{"message": "Access denied"}'))

    assert isinstance(error, VendorRejected) and not error.retriable
    assert "not enabled for the organisation" in error.message and "Access denied" in error.message


@pytest.mark.parametrize(("country", "sent"), [
    ("GB", "GB"), ("gb", "GB"), (" de ", "DE"), ("United Kingdom", None), ("GBR", None), ("", None)])
def test_the_customers_country_is_two_letters_or_left_out(country: str, sent: str | None) -> None:
    """Page: country "optional ... Two letter code of the country as per ISO 3166-1"."""
    customer = {**an_event()["order"]["customer"], "country": country}
    body = reevoo_order_body(an_order(customer=customer), "T")
    assert body["customer"].get("country") == sent


def test_throttling_and_outage_carry_retry_after() -> None:
    throttled = reevoo_error("submit_order", HttpAnswer(429, {"Retry-After": "3"}, b""))
    down = reevoo_error("submit_order", HttpAnswer(503, {"Retry-After": "60"}, b""))

    assert isinstance(throttled, VendorThrottled) and throttled.retry_after == 3.0
    assert isinstance(down, VendorUnavailable) and down.retry_after == 60.0


# ----------------------------------------------------------------------------- adapter flow


def scripted(*answers: HttpAnswer, settings: ReevooSettings = SETTINGS
             ) -> tuple[ReevooAdapter, MockTransport]:
    """A Reevoo adapter whose requests the answers meet, in order."""
    queue = list(answers)
    transport = MockTransport(lambda request: queue.pop(0))
    adapter = ReevooAdapter(settings, http=VendorHttp.for_vendor(Vendor.REEVOO, settings,
                                                                 transport=transport))
    return adapter, transport


async def test_submit_posts_to_the_organisation_with_basic_auth() -> None:
    adapter, http = scripted(HttpAnswer(202, {}, PAGE_202))
    order = an_order()

    observation = await adapter.submit(order, PairState())

    assert observation.status is VendorStatus.COMPLETED
    assert observation.vendor_order_ref == "3b9c1e2a-5f4d-4c7b-9a1e-2d3f4a5b6c7d"
    (sent,) = http.requests
    assert (sent.operation, sent.method, sent.path) == (
        "submit_order", "POST", "/v4/organisations/TRKREF123/customer_order"
    )
    assert sent.json_body == reevoo_order_body(order, "trkref123")
    assert sent.headers is not None
    scheme, credentials = sent.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{API_KEY}:{API_SECRET}"


@pytest.mark.parametrize(
    ("answer", "error_class"),
    [
        (HttpAnswer(400, {}, b'{"message": "Invalid TRKREF supplied"}'), VendorRejected),
        (HttpAnswer(422, {}, b'{"message": "bad", "errors": ["x"]}'), VendorRejected),
        (HttpAnswer(401, {}, b""), VendorAuthFailed),
        (HttpAnswer(500, {}, b""), VendorUnavailable),
    ],
)
async def test_submit_raises_the_translated_error(
    answer: HttpAnswer, error_class: type[VendorError]
) -> None:
    adapter, _ = scripted(answer)

    with pytest.raises(error_class) as caught:
        await adapter.submit(an_order(), PairState())
    assert API_SECRET not in str(caught.value) and API_KEY not in str(caught.value)


@pytest.mark.parametrize("missing", ["api_key", "api_secret", "trkref"])
async def test_start_refuses_missing_credentials(missing: str) -> None:
    adapter, _ = scripted(settings=SETTINGS.model_copy(update={missing: None}))

    with pytest.raises(ValueError, match=missing):
        await adapter.start()


async def test_poll_never_calls_reevoo_and_restates_completion() -> None:
    adapter, http = scripted()

    observation = await adapter.poll(an_order(), PairState("uuid-1", "accepted"))

    assert observation == Observation(VendorStatus.COMPLETED, vendor_order_ref="uuid-1",
                                      vendor_state="accepted")  # what was recorded, as it was
    assert http.requests == []


def test_fulfilment_date_is_the_day_the_order_was_fulfilled_in_the_shops_offset() -> None:
    """Page: "fulfilment_date ... Date when the order was fulfilled. Format: dd-mm-yyyy"."""
    order = an_order(placed_at="2026-03-01T23:30:00+02:00")
    # 2026-03-04 22:30 UTC is already the 5th at +02:00.
    fulfilled = datetime(2026, 3, 4, 22, 30, tzinfo=UTC).timestamp()
    body = reevoo_order_body(order, "T", fulfilled)
    assert body["order_date"] == "01-03-2026" and body["fulfilment_date"] == "05-03-2026"
    assert "fulfilment_date" not in reevoo_order_body(order, "T")
