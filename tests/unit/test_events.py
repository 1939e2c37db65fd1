"""The event models against the contract: its examples, money, the rules of order.created,
deterministic event ids and the terminal flag of order.vendor_status."""

from __future__ import annotations

import copy
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from testkit import FIXTURES

from orderflow.contracts.events import (
    Order,
    OrderCreated,
    OrderPrintFilesReady,
    OrderVendorStatus,
    Vendor,
    VendorStatus,
    print_files_event_id,
    status_event_id,
    wire_json,
)

EXAMPLES: list[tuple[str, type[BaseModel]]] = [
    ("order-created.json", OrderCreated),
    ("order-created-minimal.json", OrderCreated),
    ("vendor-status.json", OrderVendorStatus),
    ("print-files-ready.json", OrderPrintFilesReady),
]
TERMINAL = [VendorStatus.COMPLETED, VendorStatus.FAILED, VendorStatus.REJECTED,
            VendorStatus.CANCELLED, VendorStatus.TIMED_OUT]


def example(name: str = "order-created.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def order_event(**order_changes: Any) -> dict[str, Any]:
    event = example()
    event["order"].update(order_changes)
    return event


def refusal(event: dict[str, Any]) -> str:
    """The validation message of an order.created event the model must refuse."""
    with pytest.raises(ValidationError) as info:
        OrderCreated.model_validate_json(json.dumps(event))
    return str(info.value)


def line(**fields: Any) -> dict[str, Any]:
    return {"line_id": "1", "sku": "S", "quantity": 1, "unit_price": "1.00", **fields}


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize(("name", "model"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_contract_example_validates_and_round_trips(name: str, model: type[BaseModel]) -> None:
    text = (FIXTURES / name).read_text()
    parsed = model.model_validate_json(text)
    # Every field the example sets comes back out exactly as written.
    assert parsed.model_dump(mode="json", exclude_unset=True) == json.loads(text)
    assert model.model_validate_json(parsed.model_dump_json()) == parsed


@pytest.mark.parametrize("name", ["vendor-status.json", "print-files-ready.json"])
def test_output_example_is_exactly_what_we_write(name: str) -> None:
    model = OrderVendorStatus if name == "vendor-status.json" else OrderPrintFilesReady
    text = (FIXTURES / name).read_text()
    assert json.loads(wire_json(model.model_validate_json(text))) == json.loads(text)


def test_full_example_reads_as_the_contract_describes() -> None:
    order = OrderCreated.model_validate(example()).order
    assert order.order_id == "SHOP-100234"
    assert order.total == Decimal("57.20")
    design, composition, smake_only = order.lines
    assert design.zakeke is not None and design.zakeke.design_id == "000-pLheeWxP125a8axD07QthB"
    assert design.zakeke.design_unit_price == Decimal("4.00")
    assert design.smake is not None and design.smake.variant_id == 25
    assert composition.zakeke is not None and composition.zakeke.composition_id == "315-abc123"
    assert smake_only.smake is not None and smake_only.smake.sku == "CAP-02-SMK"
    assert design.metadata == {"colour": "black"}


def test_unknown_input_fields_are_ignored() -> None:
    event = order_event(gift_wrap=True)
    event["future_field"] = {"x": 1}
    event["order"]["lines"][0]["engraving"] = "hello"
    assert OrderCreated.model_validate(event).order.order_id == "SHOP-100234"


def test_models_are_immutable() -> None:
    order = OrderCreated.model_validate(example()).order
    with pytest.raises(ValidationError):
        order.order_id = "other"  # type: ignore[misc]


# ----------------------------------------------------------------------------- money


@pytest.mark.parametrize("amount", ["12.00", "0.50", "-3.10", "100", "0", "0.0000001", "0.00000000",
                                    "12345678901234567890.123456789"])
def test_money_is_decimal_and_serializes_as_the_same_string(amount: str) -> None:
    event = order_event(total=amount)
    event["order"]["lines"][0]["unit_price"] = amount
    order = OrderCreated.model_validate_json(json.dumps(event)).order
    assert isinstance(order.total, Decimal) and order.total == Decimal(amount)
    dumped = order.model_dump(mode="json")
    assert dumped["total"] == amount
    assert dumped["lines"][0]["unit_price"] == amount
    # What the tracking record stores must read back (the job is restored from it).
    assert Order.model_validate(dumped) == order


@pytest.mark.parametrize("amount", [57.2, 57, True])
def test_money_as_a_json_number_is_refused_with_a_clear_message(amount: Any) -> None:
    message = refusal(order_event(total=amount))
    assert "order.total" in message
    assert 'must be a decimal string such as "12.00"' in message


@pytest.mark.parametrize("amount", ["", "12,00", "1e3", "5.72E+1", "NaN", "Infinity", " 12.00", "12.",
                                    ".5", "+1.00", "12.00\n",
                                    "\uff11\uff12.\uff10\uff10", "\u0661\u0662"])  # other scripts' digits
def test_money_that_is_not_a_plain_decimal_string_is_refused(amount: str) -> None:
    event = order_event()
    event["order"]["lines"][1]["unit_price"] = amount
    assert "order.lines.1.unit_price" in refusal(event)


def test_design_unit_price_is_money_too() -> None:
    event = order_event()
    event["order"]["lines"][0]["customization"]["design_unit_price"] = 4.0
    assert "design_unit_price" in refusal(event)


# ----------------------------------------------------------------------------- order.created rules


@pytest.mark.parametrize("customization", [
    {"provider": "zakeke", "design_id": "d", "composition_id": "c"},
    {"provider": "zakeke"},
    {"provider": "zakeke", "design_id": None, "composition_id": None},
])
def test_zakeke_customization_needs_exactly_one_target(customization: dict[str, Any]) -> None:
    message = refusal(order_event(lines=[line(customization=customization)]))
    assert "exactly one of design_id or composition_id" in message


@pytest.mark.parametrize("customization", [
    {"provider": "zakeke", "design_id": "d"},
    {"provider": "zakeke", "design_id": "d", "modification_id": "m", "design_unit_price": "4.00"},
    {"provider": "zakeke", "composition_id": "c"},
])
def test_zakeke_customization_with_one_target_is_accepted(customization: dict[str, Any]) -> None:
    OrderCreated.model_validate(order_event(lines=[line(customization=customization)]))


def test_smake_fulfilment_needs_variant_id_or_sku() -> None:
    message = refusal(order_event(lines=[line(fulfilment={"provider": "smake"})]))
    assert "needs variant_id or sku" in message
    for fulfilment in ({"provider": "smake", "variant_id": 25}, {"provider": "smake", "sku": "X"},
                       {"provider": "smake", "variant_id": 25, "sku": "X"}):
        OrderCreated.model_validate(order_event(lines=[line(fulfilment=fulfilment)]))


@pytest.mark.parametrize("variant_id", [0, -1, "abc"])
def test_smake_variant_id_is_a_positive_integer(variant_id: Any) -> None:
    refusal(order_event(lines=[line(fulfilment={"provider": "smake", "variant_id": variant_id})]))


def test_a_line_of_a_provider_orderflow_does_not_know_is_kept_by_name_only() -> None:
    # Not a reason to refuse the order: its other lines still go to the vendors we know.
    event = order_event(lines=[line(customization={"provider": "other", "design_id": "d"},
                                    fulfilment={"provider": "printful", "sku": "X"}),
                               line(line_id="2")])
    order = OrderCreated.model_validate(event).order
    first = order.lines[0]
    assert (first.zakeke, first.smake) == (None, None)
    assert first.customization is not None and first.customization.provider == "other"
    assert first.fulfilment is not None and first.fulfilment.provider == "printful"


def test_a_known_providers_line_is_validated_in_full() -> None:
    assert "design_id" in refusal(order_event(lines=[line(customization={"provider": "zakeke"})]))
    assert "variant_id" in refusal(order_event(lines=[line(fulfilment={"provider": "smake"})]))
    assert "provider" in refusal(order_event(lines=[line(customization={"design_id": "d"})]))


@pytest.mark.parametrize(("count", "valid"), [(0, False), (1, True), (500, True), (501, False)])
def test_an_order_has_1_to_500_lines(count: int, valid: bool) -> None:
    event = order_event(lines=[line(line_id=str(i)) for i in range(count)])
    if valid:
        assert len(OrderCreated.model_validate(event).order.lines) == count
    else:
        assert "order.lines" in refusal(event)


@pytest.mark.parametrize(("order_id", "valid"), [("", False), ("A", True), ("x" * 64, True),
                                                 ("x" * 65, False), ("shop/1 2", True)])
def test_order_id_is_1_to_64_characters(order_id: str, valid: bool) -> None:
    event = order_event(order_id=order_id)
    if valid:
        assert OrderCreated.model_validate(event).order.order_id == order_id
    else:
        assert "order.order_id" in refusal(event)


def test_duplicate_line_ids_are_refused() -> None:
    message = refusal(order_event(lines=[line(line_id="L1"), line(line_id="L2"), line(line_id="L1")]))
    assert "line_id 'L1' appears more than once" in message


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "two"])
def test_quantity_is_an_integer_of_at_least_one(quantity: Any) -> None:
    refusal(order_event(lines=[line(quantity=quantity)]))


@pytest.mark.parametrize("field", ["placed_at", "currency", "total", "customer", "lines", "order_id"])
def test_required_order_fields(field: str) -> None:
    event = example()
    del event["order"][field]
    assert f"order.{field}" in refusal(event)


def test_customer_email_is_required() -> None:
    event = example("order-created-minimal.json")
    event["order"]["customer"] = {"first_name": "Ann"}
    assert "order.customer.email" in refusal(event)


@pytest.mark.parametrize(("changes", "where"), [
    ({"event_type": "order.updated"}, "event_type"),
    ({"schema_version": 2}, "schema_version"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"event_id": ""}, "event_id"),
])
def test_envelope_fields(changes: dict[str, Any], where: str) -> None:
    event = example()
    event.update(changes)
    assert where in refusal(event)


def test_times_need_an_offset_and_currency_three_capitals() -> None:
    assert "order.placed_at" in refusal(order_event(placed_at="2026-11-22T10:15:29"))
    OrderCreated.model_validate(order_event(placed_at="2026-11-22T11:15:29+01:00"))
    for currency in ("eur", "EURO", "E1R"):
        assert "order.currency" in refusal(order_event(currency=currency))


# ----------------------------------------------------------------------------- event ids


def test_status_event_ids_are_deterministic_uuids() -> None:
    first = status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.IN_PROGRESS, "checking")
    assert first == status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.IN_PROGRESS, "checking")
    assert uuid.UUID(first).version == 5


def test_different_transitions_get_different_ids() -> None:
    ids = {
        status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.SUBMITTED, None),
        status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.IN_PROGRESS, "checking"),
        status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.IN_PROGRESS, "preparing"),
        status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.IN_PROGRESS, "prepared"),
        status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.COMPLETED, "completed"),
        status_event_id("SHOP-1", Vendor.ZAKEKE, VendorStatus.SUBMITTED, None),
        status_event_id("SHOP-1", Vendor.ZAKEKE, VendorStatus.COMPLETED, None),
        status_event_id("SHOP-1", Vendor.REEVOO, VendorStatus.COMPLETED, None),
        status_event_id("SHOP-2", Vendor.SMAKE, VendorStatus.SUBMITTED, None),
        status_event_id("SHOP-2", Vendor.SMAKE, VendorStatus.COMPLETED, None),
        print_files_event_id("SHOP-1", "L1"),
        print_files_event_id("SHOP-1", "L2"),
        print_files_event_id("SHOP-2", "L1"),
    }
    assert len(ids) == 13


def test_submitted_id_does_not_depend_on_the_vendor_state() -> None:
    """`submitted` happens once per pair, whatever state word came with it."""
    assert (status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.SUBMITTED, None)
            == status_event_id("SHOP-1", Vendor.SMAKE, VendorStatus.SUBMITTED, "draft"))


def test_every_terminal_status_of_a_pair_shares_one_id() -> None:
    """A pair has exactly one terminal event, so downstream de-duplication by id can never
    let two different endings through (say, timed_out racing a late completed)."""
    ids = {status_event_id("SHOP-1", Vendor.SMAKE, status, state)
           for status in TERMINAL for state in (None, "completed", "failed")}
    assert len(ids) == 1
    assert ids != {status_event_id("SHOP-1", Vendor.ZAKEKE, VendorStatus.COMPLETED, None)}


def test_print_files_event_id_is_deterministic_per_line() -> None:
    assert print_files_event_id("SHOP-1", "L1") == print_files_event_id("SHOP-1", "L1")
    assert uuid.UUID(print_files_event_id("SHOP-1", "L1")).version == 5


# ----------------------------------------------------------------------------- order.vendor_status


def test_terminal_statuses_are_the_contracts_five() -> None:
    assert {s for s in VendorStatus if s.terminal} == set(TERMINAL)
    assert {s.value for s in VendorStatus} == {"submitted", "in_progress", "completed", "failed",
                                               "rejected", "cancelled", "timed_out"}


@pytest.mark.parametrize("status", list(VendorStatus))
def test_terminal_must_match_the_status(status: VendorStatus) -> None:
    event = example("vendor-status.json")
    event.update(status=status.value, terminal=status.terminal)
    assert OrderVendorStatus.model_validate(event).terminal is status.terminal
    wrong = copy.deepcopy(event)
    wrong["terminal"] = not status.terminal
    expected = f"terminal must be {status.terminal} for status {status.value}"
    with pytest.raises(ValidationError, match=expected):
        OrderVendorStatus.model_validate(wrong)


def test_vendor_status_defaults_and_vendor_names() -> None:
    event = example("vendor-status.json")
    for name in ("vendor_order_ref", "vendor_state", "reason", "tracking_numbers", "event_type",
                 "schema_version"):
        del event[name]
    parsed = OrderVendorStatus.model_validate(event)
    assert parsed.event_type == "order.vendor_status" and parsed.schema_version == 1
    assert parsed.tracking_numbers == [] and parsed.reason is None
    event["vendor"] = "acme"
    with pytest.raises(ValidationError):
        OrderVendorStatus.model_validate(event)


def test_print_files_ready_is_always_zakeke() -> None:
    event = example("print-files-ready.json")
    assert OrderPrintFilesReady.model_validate(event).vendor is Vendor.ZAKEKE
    event["vendor"] = "smake"
    with pytest.raises(ValidationError):
        OrderPrintFilesReady.model_validate(event)
