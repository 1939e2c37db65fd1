"""Smake: the create body against the page's attribute tables and example, the state table,
the reading of every answer, and the submit/poll flow over a scripted fake transport."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from testkit import FIXTURES, an_order

from orderflow.adapters.errors import (
    VendorAuthFailed,
    VendorError,
    VendorRejected,
    VendorThrottled,
    VendorUnavailable,
)
from orderflow.adapters.http import HttpAnswer, MockTransport, VendorHttp
from orderflow.adapters.outcomes import Observation, PairState, ShipmentSeen
from orderflow.adapters.smake import (
    LOOKUP_MAX_PAGES,
    STATE_TO_STATUS,
    STREET_LINE_MAX,
    SmakeAdapter,
    choose_existing_order,
    created_order_id,
    has_next_page,
    observation_from_order,
    refusal_before_create,
    smake_create_body,
    smake_error,
    tracking_numbers,
)
from orderflow.config.settings import PollSettings, SmakeSettings
from orderflow.consumer.jobs import Job, Phase
from orderflow.consumer.transitions import observed
from orderflow.contracts.events import Vendor, VendorStatus, wire_json


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


SETTINGS = SmakeSettings(
    base_url="https://api.smake.io/v2/apps/1",
    api_key=SecretStr("sk-test-not-real"),
    default_payment_method="prepayment",
    default_shipping_method="dhl-express",
)

# The page's "Post" example request, verbatim.
PAGE_CREATE_EXAMPLE: dict[str, Any] = {
    "customer": {"email": "max@example.com"},
    "items": [{"variant": {"type": "basic", "id": 25}, "quantity": 3}],
    "shipping_address": {
        "first_name": "Max", "last_name": "Mustermann", "street1": "Am Wassermann 361",
        "zip": "508291", "city": "Köln", "country_code": "DE", "phone": "+49 123 456 789",
        "email": "max@example.com",
    },
    "shipments": [{"shipping_method": {"handle": "shipping-method-handle"}}],
    "payments": [{"payment_method": {"handle": "payment-method-handle"}}],
}
# The page's "Attributes" table (top level) and "Address object" table.
PAGE_ORDER_ATTRIBUTES = {
    "customer", "items", "order_type", "number", "external_identifier", "external_reference",
    "cost_centre", "shipping_address", "billing_address", "whitelabel_address", "payments",
    "shipments",
}
PAGE_ADDRESS_FIELDS = {
    "company", "first_name", "last_name", "street1", "street2", "zip", "city", "country_code",
    "province_code", "phone", "email", "vat_in",
}
PAGE_ADDRESS_REQUIRED = {
    "first_name", "last_name", "street1", "zip", "city", "country_code", "phone", "email",
}

# The page's "Get" example response (trimmed to what the mapping reads, otherwise verbatim).
PAGE_GET_EXAMPLE: dict[str, Any] = {
    "id": 1,
    "external_identifier": None,
    "state": "completed",
    "failure_message": None,
    "shipments": [
        {
            "id": 1,
            "shipping_method": {"handle": "pickup", "title": "Pickup", "price": 0},
            "tracking_number": "2229446017085",
            "media": [],
            "order": 1,
        }
    ],
}


# ----------------------------------------------------------------------------- create body


def test_create_body_from_the_contract_example_field_by_field() -> None:
    body = smake_create_body(an_order(), SETTINGS)

    assert set(body) <= PAGE_ORDER_ATTRIBUTES
    assert set(PAGE_CREATE_EXAMPLE) <= set(body)  # everything the page's example sends
    assert body["customer"] == {"email": "john@example.com"}
    # Smake lines only (L1 by variant id, L3 by origin sku); L2 is a Zakeke-only line.
    assert body["items"] == [
        {"variant": {"type": "basic", "id": 25}, "quantity": 2},
        {"variant": {"type": "basic", "origin": {"sku": "CAP-02-SMK"}}, "quantity": 1},
    ]
    assert body["shipping_address"] == {
        "first_name": "John",
        "last_name": "Doe",
        "street1": "123 Main St",
        "zip": "12345",
        "city": "Anytown",
        "country_code": "DE",
        "phone": "+49 123 456 789",
        "email": "john@example.com",
    }
    assert set(body["shipping_address"]) <= PAGE_ADDRESS_FIELDS
    assert PAGE_ADDRESS_REQUIRED <= set(body["shipping_address"])
    # The order has no billing address: Smake's documented default, made explicit.
    assert body["billing_address"] == body["shipping_address"]
    assert body["payments"] == [{"payment_method": {"handle": "invoice"}}]
    assert body["shipments"] == [{"shipping_method": {"handle": "standard"}}]
    assert body["external_identifier"] == "SHOP-100234"
    assert body["number"] == "100234"


def test_create_body_has_the_shapes_of_the_page_example() -> None:
    body = smake_create_body(an_order(), SETTINGS)

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(value[0])] if value else []
        return type(value).__name__

    page = shape(PAGE_CREATE_EXAMPLE)
    ours = shape(body)
    for key in ("customer", "payments", "shipments"):
        assert ours[key] == page[key]
    assert ours["items"][0] == page["items"][0]
    assert ours["shipping_address"] == page["shipping_address"]


def test_variant_forms_by_id_and_by_origin_sku() -> None:
    event = load_event("order-created.json")
    lines = event["order"]["lines"]
    lines[0]["fulfilment"] = {"provider": "smake", "variant_id": 7, "sku": "IGNORED-SKU"}
    body = smake_create_body(an_order(lines=lines), SETTINGS)

    by_id, by_sku = (item["variant"] for item in body["items"])
    # Page: `id` "yes, if origin.external_identifier or origin.sku is not specified"; the id
    # is Smake's own reference, so with both we send only the id.
    assert by_id == {"type": "basic", "id": 7}
    assert by_sku == {"type": "basic", "origin": {"sku": "CAP-02-SMK"}}


def test_payment_and_shipping_handles_default_from_settings() -> None:
    body = smake_create_body(an_order(payment_method=None, shipping_method=None), SETTINGS)

    assert body["payments"] == [{"payment_method": {"handle": "prepayment"}}]
    assert body["shipments"] == [{"shipping_method": {"handle": "dhl-express"}}]


def test_billing_address_of_the_order_is_used_when_present() -> None:
    billing = {
        "company": "Doe GmbH", "first_name": "Jane", "last_name": "Doe", "street1": "1 Bill St",
        "street2": "Floor 2", "zip": "54321", "city": "Billtown", "country_code": "DE",
        "province_code": None, "phone": "+49 1", "email": "billing@example.com",
    }
    body = smake_create_body(an_order(billing_address=billing), SETTINGS)

    assert body["billing_address"] == {k: v for k, v in billing.items() if v is not None}
    assert body["shipping_address"]["street1"] == "123 Main St"


def test_missing_address_email_is_the_customer_email_and_nulls_are_left_out() -> None:
    event = load_event("order-created.json")
    shipping = event["order"]["shipping_address"] | {"email": None, "street2": None}
    billing = shipping | {"street1": "9 Other Rd", "email": "own@example.com"}
    body = smake_create_body(an_order(shipping_address=shipping, billing_address=billing),
                             SETTINGS)

    assert body["shipping_address"]["email"] == "john@example.com"
    assert body["billing_address"]["email"] == "own@example.com"
    for address in (body["shipping_address"], body["billing_address"]):
        assert None not in address.values()
        assert "street2" not in address and "company" not in address


def test_order_number_is_optional() -> None:
    body = smake_create_body(an_order(order_number=None), SETTINGS)

    assert "number" not in body
    assert body["external_identifier"] == "SHOP-100234"


# ----------------------------------------------------------------------------- refusals


def test_order_without_shipping_address_is_refused() -> None:
    reason = refusal_before_create(an_order(shipping_address=None))

    assert reason is not None and "shipping_address" in reason


def test_order_without_smake_lines_is_refused() -> None:
    reason = refusal_before_create(an_order("order-created-minimal.json"))

    assert reason is not None and "Smake" in reason


@pytest.mark.parametrize("address_name", ["shipping_address", "billing_address"])
@pytest.mark.parametrize("field", ["street1", "street2"])
def test_street_lines_over_35_characters_are_refused_not_cut(address_name: str, field: str) -> None:
    address = load_event("order-created.json")["order"]["shipping_address"]
    at_limit = an_order(**{address_name: address | {field: "x" * STREET_LINE_MAX}})
    too_long = an_order(**{address_name: address | {field: "x" * (STREET_LINE_MAX + 1)}})

    assert refusal_before_create(at_limit) is None
    assert smake_create_body(at_limit, SETTINGS)[address_name][field] == "x" * 35
    reason = refusal_before_create(too_long)
    assert reason is not None
    assert f"{address_name}.{field}" in reason and "36" in reason and "35" in reason


def test_contract_example_is_not_refused() -> None:
    assert refusal_before_create(an_order()) is None


# ----------------------------------------------------------------------------- states


EXPECTED_STATES = {
    "draft": (VendorStatus.SUBMITTED, "draft"),
    "checking": (VendorStatus.IN_PROGRESS, "checking"),
    "preparing": (VendorStatus.IN_PROGRESS, "preparing"),
    "prepared": (VendorStatus.IN_PROGRESS, "prepared"),
    "completed": (VendorStatus.COMPLETED, "completed"),
    "failed": (VendorStatus.FAILED, "failed"),
    "cancelled": (VendorStatus.CANCELLED, "cancelled"),
}


def test_state_table_covers_every_state_of_the_page() -> None:
    assert set(STATE_TO_STATUS) == set(EXPECTED_STATES)


@pytest.mark.parametrize(("state", "expected"), sorted(EXPECTED_STATES.items()))
def test_every_smake_state_maps_to_the_contract(
    state: str, expected: tuple[VendorStatus, str]
) -> None:
    observation = observation_from_order(PAGE_GET_EXAMPLE | {"state": state})

    assert (observation.status, observation.vendor_state) == expected
    assert observation.vendor_order_ref == "1"
    assert observation.tracking_numbers == ("2229446017085",)
    if state == "failed":
        assert observation.reason
    else:
        assert observation.reason is None


def test_failed_carries_the_failure_message() -> None:
    observation = observation_from_order(
        PAGE_GET_EXAMPLE | {"state": "failed", "failure_message": "Image could not be downloaded"}
    )

    assert observation.status is VendorStatus.FAILED
    assert observation.reason == "Image could not be downloaded"


def test_failed_without_failure_message_still_has_a_reason() -> None:
    observation = observation_from_order(PAGE_GET_EXAMPLE | {"state": "failed"})

    assert observation.reason and "failure_message" in observation.reason


@pytest.mark.parametrize("state", ["on_hold", "", None, 3, "COMPLETED"])
def test_unknown_state_is_a_transient_unreadable_answer(state: Any) -> None:
    with pytest.raises(VendorUnavailable, match="unknown state"):
        observation_from_order(PAGE_GET_EXAMPLE | {"state": state})


@pytest.mark.parametrize("answer", [None, [], "completed"])
def test_an_order_answer_that_is_not_an_object_is_unreadable(answer: Any) -> None:
    with pytest.raises(VendorUnavailable):
        observation_from_order(answer)


def test_tracking_numbers_skip_nulls_and_repeats() -> None:
    order = {"shipments": [
        {"tracking_number": None}, {"tracking_number": "A1"}, {"tracking_number": ""},
        {"tracking_number": "B2"}, {"tracking_number": "A1"}, {}, "junk",
    ]}

    assert tracking_numbers(order) == ("A1", "B2")
    assert tracking_numbers({"shipments": None}) == ()


# ----------------------------------------------------------------------------- lookup, create


def listed(*orders: dict[str, Any], next_page: str | None = None) -> dict[str, Any]:
    return {"data": list(orders), "links": {"next": next_page}, "meta": {"per_page": 100}}


def test_lookup_with_no_order_adopts_nothing() -> None:
    assert choose_existing_order(listed(), "SHOP-1") == (None, [])


def test_lookup_adopts_the_lowest_id_of_several() -> None:
    listing = listed(
        {"id": 12, "external_identifier": "SHOP-1", "state": "checking"},
        {"id": 3, "external_identifier": "SHOP-1", "state": "draft"},
        {"id": 7, "external_identifier": "SHOP-1", "state": "prepared"},
    )

    chosen, ids = choose_existing_order(listing, "SHOP-1")

    assert chosen is not None and chosen["id"] == 3
    assert ids == ["3", "7", "12"]


def test_lookup_ignores_orders_of_another_external_identifier() -> None:
    listing = listed({"id": 2, "external_identifier": "SHOP-10", "state": "draft"})

    assert choose_existing_order(listing, "SHOP-1") == (None, [])


@pytest.mark.parametrize("listing", [None, [], {"data": None}, {"items": []}])
def test_unreadable_lookup_is_transient(listing: Any) -> None:
    with pytest.raises(VendorUnavailable):
        choose_existing_order(listing, "SHOP-1")


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"X-Identifier": "137", "Location": "https://api.smake.io/jobs/1"}, b"", "137"),
        ({"x-identifier": " 138 "}, b"", "138"),
        ({"Location": "https://api.smake.io/v2/apps/1/orders/139"}, b"", "139"),
        ({"Location": "/v2/orders/140/"}, b"", "140"),
        # The page's example Location is a job, not the order: its number is not an order id.
        ({"Location": "https://api.smake.io/jobs/1"}, b"", None),
        ({}, b'{"id": 141}', "141"),
        ({}, b"", None),
        ({}, b"accepted", None),
    ],
)
def test_created_order_id(headers: dict[str, str], body: bytes, expected: str | None) -> None:
    assert created_order_id(HttpAnswer(202, headers, body)) == expected


# ----------------------------------------------------------------------------- errors


LARAVEL_422 = json.dumps({
    "message": "The given data was invalid.",
    "errors": {
        "shipping_address.street1": ["The street1 may not be greater than 35 characters."],
        "items.0.variant.id": ["The selected variant id is invalid."],
    },
}).encode()


@pytest.mark.parametrize(
    ("status", "operation", "error_class"),
    [
        (400, "create_order", VendorRejected),
        (401, "create_order", VendorAuthFailed),
        (403, "get_order", VendorAuthFailed),
        (404, "find_order", VendorUnavailable),
        (404, "create_order", VendorUnavailable),
        (404, "get_order", VendorUnavailable),
        (405, "create_order", VendorUnavailable),
        (409, "create_order", VendorRejected),
        (422, "create_order", VendorRejected),
        (429, "find_order", VendorThrottled),
        (500, "create_order", VendorUnavailable),
        (502, "get_order", VendorUnavailable),
        (503, "find_order", VendorUnavailable),
        (302, "get_order", VendorUnavailable),
    ],
)
def test_every_error_status_maps_to_one_error_class(
    status: int, operation: str, error_class: type[VendorError]
) -> None:
    error = smake_error(operation, HttpAnswer(status, {}, b'{"message": "nope"}'))

    assert type(error) is error_class
    assert error.vendor is Vendor.SMAKE and error.operation == operation
    assert error.status == status
    assert error.retriable is (error_class is not VendorRejected)


def test_422_is_rejected_with_smakes_message_and_field_errors() -> None:
    error = smake_error("create_order", HttpAnswer(422, {}, LARAVEL_422))

    assert isinstance(error, VendorRejected)
    assert error.message.startswith("The given data was invalid.")
    assert "shipping_address.street1: The street1 may not be greater than 35" in error.message
    assert "items.0.variant.id: The selected variant id is invalid." in error.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"errors": ["a", "b"]}', "a, b"),
        (b'{"message": "Bad request"}', "Bad request"),
        (b"plain text refusal", "plain text refusal"),
        (b"", "HTTP 400"),
    ],
)
def test_refusal_messages_of_other_shapes(body: bytes, expected: str) -> None:
    assert smake_error("create_order", HttpAnswer(400, {}, body)).message == expected


def test_throttling_and_outage_carry_retry_after() -> None:
    throttled = smake_error("find_order", HttpAnswer(429, {"Retry-After": "7"}, b""))
    down = smake_error("get_order", HttpAnswer(503, {"Retry-After": "30"}, b""))

    assert isinstance(throttled, VendorThrottled) and throttled.retry_after == 7.0
    assert isinstance(down, VendorUnavailable) and down.retry_after == 30.0


# ----------------------------------------------------------------------------- adapter flow


Answer = tuple[int, Mapping[str, str], Any]


def answer(status: int, headers: Mapping[str, str], body: Any) -> HttpAnswer:
    return HttpAnswer(status, dict(headers), body if isinstance(body, bytes) else json.dumps(body).encode())


def adapter_with(script: dict[tuple[str, str], list[Answer]],
                 settings: SmakeSettings = SETTINGS) -> tuple[SmakeAdapter, MockTransport]:
    """A Smake adapter whose requests a script answers, by (method, path); the transport
    keeps every request."""
    transport = MockTransport.scripted(
        {key: [answer(*entry) for entry in entries] for key, entries in script.items()})
    http = VendorHttp.for_vendor(Vendor.SMAKE, settings, transport=transport)
    return SmakeAdapter(settings, http=http), transport


async def test_submit_without_shipping_address_calls_nothing() -> None:
    adapter, http = adapter_with({})

    with pytest.raises(VendorRejected, match="shipping_address"):
        await adapter.submit(an_order(shipping_address=None), PairState())
    assert http.requests == []


async def test_submit_with_a_too_long_street_calls_nothing() -> None:
    address = load_event("order-created.json")["order"]["shipping_address"]
    adapter, http = adapter_with({})

    with pytest.raises(VendorRejected, match="street1"):
        await adapter.submit(an_order(shipping_address=address | {"street1": "y" * 40}),
                             PairState())
    assert http.requests == []


async def test_a_first_submit_creates_without_asking_and_records_the_intent_first() -> None:
    adapter, http = adapter_with({
        ("POST", "/orders"): [(202, {"X-Identifier": "137",
                                     "Location": "https://api.smake.io/jobs/1"}, b"")],
    })
    order = an_order()
    intents: list[int] = []

    async def record_intent() -> None:
        intents.append(len(http.requests))  # how many requests had left by then

    observation = await adapter.submit(order, PairState(record_intent=record_intent))

    assert observation == Observation(VendorStatus.SUBMITTED, vendor_order_ref="137",
                                      vendor_state="draft")
    (create,) = http.requests  # no intent before: nobody can have created it, no lookup
    assert create[:3] == ("create_order", "POST", "/orders")
    assert create[3] == smake_create_body(order, SETTINGS)
    assert intents == [0], "the intent is recorded before the create leaves"
    assert [request.headers for request in http.requests] == [{"Authorization": "Bearer sk-test-not-real"}]


async def test_a_submit_after_an_intent_asks_first_then_creates() -> None:
    adapter, http = adapter_with({
        ("GET", "/orders"): [(200, {}, listed())],
        ("POST", "/orders"): [(202, {"X-Identifier": "137"}, b"")],
    })
    observation = await adapter.submit(an_order(), PairState(intent_at=1_700_000_000.0))

    assert observation.vendor_order_ref == "137"
    (find, create) = http.requests
    assert find[:3] == ("find_order", "GET", "/orders")
    assert find[4] is not None
    assert find[4]["filter[external_identifier]"] == "SHOP-100234"
    assert create[:3] == ("create_order", "POST", "/orders")


async def test_submit_adopts_an_existing_order_without_creating() -> None:
    adapter, http = adapter_with({
        ("GET", "/orders"): [(200, {}, listed(
            {"id": 9, "external_identifier": "SHOP-100234", "state": "prepared",
             "shipments": [{"tracking_number": None}]},
            {"id": 4, "external_identifier": "SHOP-100234", "state": "checking",
             "shipments": []},
        ))],
    })

    observation = await adapter.submit(an_order(), PairState(intent_at=1_700_000_000.0))

    assert observation == Observation(VendorStatus.IN_PROGRESS, vendor_order_ref="4",
                                      vendor_state="checking")
    assert [request[1] for request in http.requests] == ["GET"]


async def test_create_answer_without_an_id_is_resolved_by_asking_again() -> None:
    adapter, http = adapter_with({
        ("GET", "/orders"): [
            (200, {}, listed({"id": 77, "external_identifier": "SHOP-100234", "state": "draft"})),
        ],
        ("POST", "/orders"): [(202, {"Location": "https://api.smake.io/jobs/5"}, b"")],
    })

    observation = await adapter.submit(an_order(), PairState())

    assert observation.vendor_order_ref == "77" and observation.status is VendorStatus.SUBMITTED
    assert [request[1] for request in http.requests] == ["POST", "GET"]


async def test_create_answer_without_an_id_and_not_listed_is_transient() -> None:
    adapter, _ = adapter_with({
        ("GET", "/orders"): [(200, {}, listed())],
        ("POST", "/orders"): [(202, {}, b"")],
    })

    with pytest.raises(VendorUnavailable, match="X-Identifier"):
        await adapter.submit(an_order(), PairState())


async def test_submit_translates_a_422() -> None:
    adapter, _ = adapter_with({
        ("GET", "/orders"): [(200, {}, listed())],
        ("POST", "/orders"): [(422, {}, LARAVEL_422)],
    })

    with pytest.raises(VendorRejected, match="variant id is invalid") as caught:
        await adapter.submit(an_order(), PairState())
    assert caught.value.status == 422


async def test_lookup_failure_stops_before_creating() -> None:
    adapter, http = adapter_with({("GET", "/orders"): [(503, {}, b"maintenance")]})

    with pytest.raises(VendorUnavailable):
        await adapter.submit(an_order(), PairState(intent_at=1_700_000_000.0))
    assert len(http.requests) == 1


async def test_poll_reads_the_order_by_its_ref() -> None:
    adapter, http = adapter_with({
        ("GET", "/orders/137"): [(200, {}, PAGE_GET_EXAMPLE | {"id": 137})],
    })

    observation = await adapter.poll(an_order(), PairState("137", "prepared"))

    # Its one shipment has its number: nothing more to wait for.
    assert observation == Observation(
        VendorStatus.COMPLETED, vendor_order_ref="137", vendor_state="completed",
        tracking_numbers=("2229446017085",), tracking_expected=False,
        shipments=(ShipmentSeen("2229446017085", "pickup", "Pickup"),))
    assert http.requests[0][:3] == ("get_order", "GET", "/orders/137")


def test_a_completed_order_with_a_shipment_still_without_a_number_is_looked_at_again() -> None:
    """Facts: "Tracking numbers live on the order's `shipments[]`; they can appear when the
    order is `completed` or later"; every shipment is announced once it has a number."""
    order = PAGE_GET_EXAMPLE | {"shipments": [
        PAGE_GET_EXAMPLE["shipments"][0],
        {"id": 2, "shipping_method": {"handle": "dhl", "title": "DHL"}, "tracking_number": None}]}
    observation = observation_from_order(order)
    assert observation.tracking_numbers == ("2229446017085",)
    assert observation.tracking_expected, "the second parcel's number is still to come"
    assert [s.carrier_handle for s in observation.shipments] == ["pickup", "dhl"]


async def test_poll_without_a_ref_looks_up_and_never_creates() -> None:
    adapter, http = adapter_with({
        ("GET", "/orders"): [
            (200, {}, listed({"id": 5, "external_identifier": "SHOP-100234", "state": "draft"})),
            (200, {}, listed()),
        ],
    })

    assert (await adapter.poll(an_order(), PairState())).vendor_order_ref == "5"
    with pytest.raises(VendorUnavailable):
        await adapter.poll(an_order(), PairState())
    assert {request[1] for request in http.requests} == {"GET"}


@pytest.mark.parametrize(
    ("answer", "error_class"),
    [
        ((404, {}, {"message": "Not found"}), VendorUnavailable),
        ((401, {}, {"message": "Unauthenticated."}), VendorAuthFailed),
        ((429, {"Retry-After": "2"}, b""), VendorThrottled),
        ((500, {}, b"boom"), VendorUnavailable),
        ((200, {}, b"<html>"), VendorUnavailable),
        ((200, {}, {"id": 1, "state": "archived"}), VendorUnavailable),
    ],
)
async def test_poll_errors(answer: Answer, error_class: type[VendorError]) -> None:
    adapter, _ = adapter_with({("GET", "/orders/1"): [answer]})

    with pytest.raises(error_class):
        await adapter.poll(an_order(), PairState("1", "draft"))


async def test_start_refuses_a_missing_api_key() -> None:
    adapter, _ = adapter_with({}, SETTINGS.model_copy(update={"api_key": None}))

    with pytest.raises(ValueError, match="api_key"):
        await adapter.start()


def test_the_api_key_never_appears_in_errors() -> None:
    error = smake_error("create_order", HttpAnswer(401, {}, b'{"message": "Unauthenticated."}'))

    assert "sk-test-not-real" not in str(error)
    assert "sk-test-not-real" not in repr(SETTINGS)


# ----------------------------------------------------------------------------- partial matches


def test_an_order_that_does_not_say_its_external_identifier_is_no_match() -> None:
    assert choose_existing_order(listed({"id": 2, "state": "draft"}), "SHOP-1") == (None, [])


def partial_match_pages(order_id: str, pages: int, exact_on: int | None) -> list[Answer]:
    """What Smake's partial-match filter answers for `order_id`: newest first, pages of
    longer ids that contain it, and (on page `exact_on`) the one that is ours."""
    answers: list[Answer] = []
    for page in range(1, pages + 1):
        orders = [{"id": 10_000 - page * 100 - n, "external_identifier": f"{order_id}{page}{n}",
                   "state": "draft"} for n in range(100)]
        if page == exact_on:
            orders[-1] = {"id": 42, "external_identifier": order_id, "state": "checking"}
        answers.append((200, {}, listed(*orders, next_page=None if page == pages else f"?page={page + 1}")))
    return answers


async def test_the_lookup_reads_every_page_and_adopts_only_the_exact_match() -> None:
    adapter, http = adapter_with({("GET", "/orders"): partial_match_pages("1001", 4, exact_on=3)})

    observation = await adapter.submit(an_order(order_id="1001"), PairState(intent_at=1.0))

    assert observation.vendor_order_ref == "42" and observation.vendor_state == "checking"
    assert [request[4]["page"] for request in http.requests if request[4]] == ["1", "2", "3", "4"]


async def test_partial_matches_on_every_page_are_not_ours_and_the_order_is_created() -> None:
    script: dict[tuple[str, str], list[Answer]] = {
        ("GET", "/orders"): partial_match_pages("1001", 3, exact_on=None),
        ("POST", "/orders"): [(202, {"X-Identifier": "555"}, b"")]}
    adapter, http = adapter_with(script)

    observation = await adapter.submit(an_order(order_id="1001"), PairState(intent_at=1.0))

    assert observation.vendor_order_ref == "555"
    assert [request[1] for request in http.requests] == ["GET", "GET", "GET", "POST"]


async def test_a_lookup_that_pages_without_end_is_an_error_and_creates_nothing() -> None:
    endless: list[Answer] = [(200, {}, listed({"id": n, "external_identifier": f"1001-{n}", "state": "draft"},
                                next_page="more")) for n in range(LOOKUP_MAX_PAGES + 5)]
    adapter, http = adapter_with({("GET", "/orders"): endless})

    with pytest.raises(VendorUnavailable, match="still had pages after 100"):
        await adapter.submit(an_order(order_id="1001"), PairState(intent_at=1.0))
    assert {request[1] for request in http.requests} == {"GET"}
    assert len(http.requests) == LOOKUP_MAX_PAGES


def test_an_empty_page_ends_the_walk_whatever_its_links_say() -> None:
    assert has_next_page(listed(next_page="?page=2")) is False
    assert has_next_page(listed({"id": 1}, next_page="?page=2")) is True
    assert has_next_page(listed({"id": 1})) is False


# ----------------------------------------------------------------------------- method handles


MAPPED = SETTINGS.model_copy(update={"shipping_method_map": {"standard": "dhl-paket"},
                                     "payment_method_map": {"invoice": "invoice-b2b",
                                                            "prepayment": "vorkasse"}})


def test_mapped_methods_become_the_producers_handles() -> None:
    body = smake_create_body(an_order(), MAPPED)
    assert body["shipments"] == [{"shipping_method": {"handle": "dhl-paket"}}]
    assert body["payments"] == [{"payment_method": {"handle": "invoice-b2b"}}]


def test_an_order_naming_no_method_gets_the_default_mapped_when_the_map_knows_it() -> None:
    body = smake_create_body(an_order(shipping_method=None, payment_method=None), MAPPED)
    assert body["payments"] == [{"payment_method": {"handle": "vorkasse"}}]
    assert body["shipments"] == [{"shipping_method": {"handle": "dhl-express"}}]


def test_without_maps_the_orders_own_words_go_through() -> None:
    body = smake_create_body(an_order(), SETTINGS)
    assert body["shipments"] == [{"shipping_method": {"handle": "standard"}}]


@pytest.mark.parametrize(("changes", "words"), [
    ({"shipping_method": "express"}, "shipping_method 'express' has no Smake handle in "
                                     "ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP"),
    ({"payment_method": "paypal"}, "payment_method 'paypal' has no Smake handle in "
                                   "ORDERFLOW_SMAKE__PAYMENT_METHOD_MAP"),
])
async def test_a_method_a_set_map_lacks_is_refused_without_calling_smake(
        changes: dict[str, str], words: str) -> None:
    adapter, http = adapter_with({}, MAPPED)
    with pytest.raises(VendorRejected, match=words):
        await adapter.submit(an_order(**changes), PairState())
    assert http.requests == []


async def test_a_throttled_create_leaves_no_doubt_but_a_throttled_lookup_after_a_create_does() -> None:
    adapter, _ = adapter_with({("POST", "/orders"): [(429, {"Retry-After": "1"}, b"")]})
    with pytest.raises(VendorThrottled) as refused:
        await adapter.submit(an_order(), PairState())
    assert refused.value.nothing_created

    adapter, _ = adapter_with({("POST", "/orders"): [(202, {}, b"")],  # created, no id given
                               ("GET", "/orders"): [(429, {"Retry-After": "1"}, b"")]})
    with pytest.raises(VendorThrottled) as lookup:
        await adapter.submit(an_order(), PairState())
    assert not lookup.value.nothing_created


# ----------------------------------------------------------------------------- batch polls


async def test_poll_many_reads_every_page_and_counts_only_exact_ids() -> None:
    first = {"data": [{"id": 137, "external_identifier": "A", "state": "prepared", "shipments": []},
                      # a partial match of "13": never taken for 13
                      {"id": 1370, "external_identifier": "B", "state": "failed",
                       "failure_message": "no", "shipments": []}],
             "links": {"next": "https://api.smake.io/orders?page=2"}, "meta": {}}
    second = {"data": [{"id": 13, "external_identifier": "C", "state": "completed",
                        "shipments": [{"tracking_number": "T-1"}]}],
              "links": {"next": None}, "meta": {}}
    adapter, http = adapter_with({("GET", "/orders"): [(200, {}, first), (200, {}, second)]})

    found = await adapter.poll_many(["137", "13", "99", "137"])

    assert set(found) == {"137", "13"}  # 99 absent: read on its own by the engine
    assert (found["137"].status, found["137"].vendor_state) == (VendorStatus.IN_PROGRESS, "prepared")
    assert found["13"].status is VendorStatus.COMPLETED and found["13"].tracking_numbers == ("T-1",)
    pages = [request.params for request in http.requests]
    assert [p["page"] for p in pages if p] == ["1", "2"]
    assert all(p is not None and p["filter[id]"] == "137,13,99" and p["per_page"] == "100"
               for p in pages)


async def test_poll_many_never_asks_for_an_unusable_id_and_fails_as_a_whole() -> None:
    adapter, http = adapter_with({("GET", "/orders"): [(503, {"Retry-After": "4"}, b"")]})

    assert await adapter.poll_many(["..", "\x00", "x" * 300]) == {}
    assert http.requests == []
    with pytest.raises(VendorUnavailable) as caught:
        await adapter.poll_many(["1", "2"])
    assert caught.value.retry_after == 4.0


async def test_polling_keeps_nothing_of_the_order_and_a_poll_needs_only_the_reference() -> None:
    adapter, http = adapter_with({("GET", "/orders/137"): [
        (200, {}, {"id": 137, "state": "checking", "shipments": []})]})

    assert adapter.polling_view(an_order()) is None
    observation = await adapter.poll(None, PairState("137", "draft"))
    assert observation.vendor_state == "checking"
    with pytest.raises(VendorUnavailable):
        await adapter.poll(None, PairState(None, None))
    assert len(http.requests) == 1, "without a reference nothing is asked"


@pytest.mark.parametrize(("country", "province", "sent_country", "sent_province"), [
    ("de", "NW", "DE", None),       # province_code is only for US, CA, AU and IL
    ("us", "AL", "US", "AL"),
    ("AU", "QLD", "AU", "QLD"),
    ("GB", None, "GB", None),
])
def test_country_is_alpha_2_in_capitals_and_province_only_where_the_page_says(
        country: str, province: str | None, sent_country: str, sent_province: str | None) -> None:
    """Page: country_code "ISO 3166-1-alpha-2 code ... Example: 'US' or 'DE'"; province_code
    "Only for shipments to the United States, Canada, Australia and Israel"."""
    address = load_event("order-created.json")["order"]["shipping_address"]
    order = an_order(shipping_address={**address, "country_code": country,
                                       "province_code": province})
    sent = smake_create_body(order, SETTINGS)["shipping_address"]
    assert sent["country_code"] == sent_country
    assert sent.get("province_code") == sent_province


async def test_a_failed_or_cancelled_smake_order_is_never_taken_again_a_new_one_is_created() -> None:
    """Contract (`orderflow retry`): "The look-up counts only vendor orders that are not
    `failed` or `cancelled`, so a retried Smake pair whose production failed gets a new
    Smake order (Smake allows several orders with one `external_identifier`), and is never
    re-adopted as the failed one"."""
    adapter, http = adapter_with({
        ("GET", "/orders"): [(200, {}, listed(
            {"id": 4, "external_identifier": "SHOP-100234", "state": "failed"},
            {"id": 7, "external_identifier": "SHOP-100234", "state": "cancelled"},
        ))],
        ("POST", "/orders"): [(202, {"X-Identifier": "12"}, b"")],
    })

    observation = await adapter.submit(an_order(), PairState("4", "failed", intent_at=1.0,
                                                             again=True))

    assert observation.vendor_order_ref == "12"
    assert [request[1] for request in http.requests] == ["GET", "POST"]


async def test_a_first_submission_adopts_a_failed_order_rather_than_producing_twice() -> None:
    """A create whose answer was lost, and whose order failed before the look-up: that
    failed order is the pair's (it ends failed; `orderflow retry` produces it anew). A
    second production of one order is never made on a guess."""
    adapter, http = adapter_with({
        ("GET", "/orders"): [(200, {}, listed(
            {"id": 4, "external_identifier": "SHOP-100234", "state": "failed",
             "failure_message": "An image could not be downloaded."}))],
    })

    observation = await adapter.submit(an_order(), PairState(intent_at=1.0))

    assert (observation.status, observation.vendor_order_ref) == (VendorStatus.FAILED, "4")
    assert [request[1] for request in http.requests] == ["GET"]


def test_items_the_producer_cancelled_are_reported_on_the_status_event() -> None:
    """Smake's item `cancelled_at` (the page's order items): reported in the optional
    `cancelled_items` of the next status event; an event without any leaves it out."""
    order = PAGE_GET_EXAMPLE | {"state": "prepared", "items": [
        {"id": 1, "quantity": 4, "variant": 27, "cancelled_at": None},
        {"id": 2, "quantity": 1, "variant": 31, "cancelled_at": "2026-12-01T10:00:00+00:00"}]}
    observation = observation_from_order(order)
    assert [(i.vendor_item_ref, i.variant_id, i.quantity) for i in observation.cancelled_items] == [
        ("2", 31, 1)]
    job = Job(order_id="SHOP-1", vendor=Vendor.SMAKE, partition=0, source_event_id="e",
              phase=Phase.POLL, status=VendorStatus.SUBMITTED, vendor_order_ref="1")
    events = observed(job, observation, 1_800_000_000.0, PollSettings(), random.Random(1)).events
    published = json.loads(wire_json(events[-1]))
    assert published["cancelled_items"] == [{"vendor_item_ref": "2", "variant_id": 31,
                                             "quantity": 1,
                                             "cancelled_at": "2026-12-01T10:00:00+00:00"}]
    quiet = observed(job, observation_from_order(PAGE_GET_EXAMPLE), 1_800_000_000.0,
                     PollSettings(), random.Random(1)).events
    assert "cancelled_items" not in json.loads(wire_json(quiet[-1]))


async def test_the_look_up_reads_only_orders_created_since_the_pair_a_day_earlier() -> None:
    """Page: `/orders?filter[created_at_min]=2017-09-27`. A short id is part of many others'
    ids; bounded by the pair's creation, the partial-match look-up ends."""
    adapter, http = adapter_with({
        ("GET", "/orders"): [(200, {}, listed())],
        ("POST", "/orders"): [(202, {"X-Identifier": "9"}, b"")],
    })
    created = datetime(2026, 12, 6, 0, 30, tzinfo=UTC).timestamp()
    await adapter.submit(an_order(), PairState(intent_at=created + 5, since=created))
    assert (http.requests[0].params or {})["filter[created_at_min]"] == "2026-12-05"
    again, http_again = adapter_with({
        ("GET", "/orders"): [(200, {}, listed())],
        ("POST", "/orders"): [(202, {"X-Identifier": "10"}, b"")],
    })
    await again.submit(an_order(), PairState(intent_at=created + 5))
    assert "filter[created_at_min]" not in (http_again.requests[0].params or {})
