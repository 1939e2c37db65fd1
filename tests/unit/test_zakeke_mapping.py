"""Zakeke adapter, pure parts: order -> register body, Zakeke answers -> summaries and
Observations' data, HTTP statuses -> errors, token answers. Compared with the examples and
attribute tables of Zakeke's Orders API and Designs API pages and the contract example."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from testkit import FIXTURES, an_order

from orderflow.adapters.errors import VendorAuthFailed, VendorRejected, VendorThrottled, VendorUnavailable
from orderflow.adapters.http import HttpAnswer, MockTransport, SentRequest, VendorHttp
from orderflow.adapters.outcomes import LinePrintFiles, Observation, PairState, PrintFileRef
from orderflow.adapters.zakeke import ZakekeAdapter
from orderflow.adapters.zakeke.answers import (
    DEFAULT_TOKEN_LIFETIME_S,
    design_unit_price_from,
    match_design_items,
    order_ref_from,
    parse_token_answer,
    summarize_zakeke_order,
    token_lifetime,
    zakeke_error,
    zip_url_from,
)
from orderflow.adapters.zakeke.request import (
    TokenCode,
    build_register_body,
    composition_lines,
    design_lines,
    dumps_exact_json,
    lines_needing_design_price,
    order_path,
    print_files_zip_path,
    registration_code,
    zakeke_lines,
    zakeke_order_date,
)
from orderflow.config.settings import ZakekeSettings
from orderflow.contracts.events import Order, Vendor, VendorStatus

# The "Register an order" request example of Zakeke's Orders API page, verbatim.
REGISTER_BODY_EXAMPLE: dict[str, Any] = {
    "orderCode": "string",
    "orderDate": "2023-11-03T09:13:38.437Z",
    "sessionID": "string",
    "total": 0,
    "details": [
        {
            "orderDetailCode": "string",
            "sku": "string",
            "designID": "string",
            "modelUnitPrice": 0,
            "designUnitPrice": 0,
            "quantity": 0,
            "designModificationID": "string",
        }
    ],
    "compositionDetails": [
        {"orderDetailCode": "string", "composition": "string", "unitPrice": 0, "quantity": 0}
    ],
}

# The order structure example of "Retrieve all orders" (one array item), verbatim.
ORDER_EXAMPLE: dict[str, Any] = {
    "id": 0,
    "code": "string",
    "orderNumber": "string",
    "salesChannel": {"id": 0, "url": "string", "platform": "string"},
    "items": [
        {
            "code": "string",
            "productSku": "string",
            "productName": "string",
            "productTemplateId": "string",
            "thumbnail": "string",
            "quantity": 0,
            "design": "string",
            "preDesignedTemplateName": "string",
            "printFilesStatus": "string",
            "printingFilesZip": "string",
            "printingFiles": [{"type": "string", "url": "string"}],
            "price": {"value": 0, "currency": "string"},
        }
    ],
    "orderDate": "string",
}

DESIGN_ID = "000-pLheeWxP125a8axD07QthB"  # the Designs page's error example id


def with_order(order: Order, **changes: Any) -> Order:
    data = order.model_dump(mode="json")
    data.update(changes)
    return Order.model_validate(data)


def with_l1_customization(order: Order, **changes: Any) -> Order:
    data = order.model_dump(mode="json")
    data["lines"][0]["customization"].update(changes)
    return Order.model_validate(data)


def zakeke_order(items: list[dict[str, Any]], ref: Any = 4711) -> dict[str, Any]:
    """A Zakeke order shaped like ORDER_EXAMPLE, with realistic values."""
    data = copy.deepcopy(ORDER_EXAMPLE)
    data.update(id=ref, code="SHOP-100234", orderNumber="100234", salesChannel=None,
                orderDate="2026-11-22T10:15:29Z", items=items)
    return data


def item(code: str, design: str, status: str, *, zip_url: str | None = None,
         files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(ORDER_EXAMPLE["items"][0])
    data.update(code=code, design=design, printFilesStatus=status, productSku="TSHIRT-BLK-M",
                quantity=2, printingFilesZip=zip_url, printingFiles=files or [])
    return data


PDF = {"type": "PDF", "url": f"https://files.example.com/print/{DESIGN_ID}.pdf"}
PNG = {"type": "PNG", "url": f"https://files.example.com/print/{DESIGN_ID}.png"}
ZIP = f"https://files.example.com/print/{DESIGN_ID}.zip"


# ----------------------------------------------------------------------------- routing of lines


def test_only_zakeke_lines_are_sent_split_by_kind() -> None:
    order = an_order()
    assert [line.line_id for line in zakeke_lines(order)] == ["L1", "L2"]
    assert [line.line_id for line in design_lines(order)] == ["L1"]
    assert [line.line_id for line in composition_lines(order)] == ["L2"]
    assert zakeke_lines(an_order("order-created-minimal.json")) == []


# ----------------------------------------------------------------------------- register body


def test_register_body_of_the_contract_example() -> None:
    body = build_register_body(an_order())
    assert body == {
        "orderCode": "SHOP-100234",
        "orderDate": "2026-11-22T10:15:29.000Z",
        "sessionID": "sess-8f2c41",
        "total": Decimal("57.20"),
        "details": [
            {
                "orderDetailCode": "L1",
                "sku": "TSHIRT-BLK-M",
                "designID": DESIGN_ID,
                # The page: "Product unit price without the design price"; the line's
                # unit_price (12.00) includes its design (4.00).
                "modelUnitPrice": Decimal("8.00"),
                "designUnitPrice": Decimal("4.00"),
                "quantity": 2,
            }
        ],
        "compositionDetails": [
            {
                "orderDetailCode": "L2",
                "composition": "315-abc123",
                "unitPrice": Decimal("9.90"),
                "quantity": 1,
            }
        ],
    }
    # L3 (a Smake-only line) is not Zakeke's business.
    assert "L3" not in json.dumps(body, default=str)


def test_register_body_uses_exactly_the_documented_property_names() -> None:
    order = with_l1_customization(an_order(), modification_id="mod-7")
    body = build_register_body(order)
    assert set(body) == set(REGISTER_BODY_EXAMPLE)
    assert set(body["details"][0]) == set(REGISTER_BODY_EXAMPLE["details"][0])
    assert set(body["compositionDetails"][0]) == set(
        REGISTER_BODY_EXAMPLE["compositionDetails"][0]
    )
    assert body["details"][0]["designModificationID"] == "mod-7"


def test_register_body_property_types_follow_the_attribute_table() -> None:
    body = build_register_body(an_order())
    # string / money / integer as the page's tables say; money travels as Decimal here and
    # becomes a JSON number in dumps_exact_json.
    for name in ("orderCode", "orderDate", "sessionID"):
        assert isinstance(body[name], str)
    assert isinstance(body["total"], Decimal)
    detail = body["details"][0]
    for name in ("orderDetailCode", "sku", "designID"):
        assert isinstance(detail[name], str)
    assert isinstance(detail["modelUnitPrice"], Decimal)
    assert isinstance(detail["designUnitPrice"], Decimal)
    assert type(detail["quantity"]) is int
    composition = body["compositionDetails"][0]
    assert isinstance(composition["unitPrice"], Decimal)
    assert type(composition["quantity"]) is int


def test_order_date_has_the_shape_of_the_page_example() -> None:
    order = with_order(an_order(), placed_at="2023-11-03T10:13:38.437+01:00")
    assert zakeke_order_date(order) == REGISTER_BODY_EXAMPLE["orderDate"]


def test_guest_session_falls_back_to_order_id() -> None:
    order = with_order(an_order(), session_id=None)
    assert build_register_body(order)["sessionID"] == "SHOP-100234"


def test_missing_design_unit_price_is_taken_from_the_lookup() -> None:
    order = with_l1_customization(an_order(), design_unit_price=None)
    assert [line.line_id for line in lines_needing_design_price(order)] == ["L1"]
    assert lines_needing_design_price(an_order()) == []
    body = build_register_body(order, {"L1": Decimal("3.50")})
    assert body["details"][0]["designUnitPrice"] == Decimal("3.50")
    with pytest.raises(ValueError, match="L1"):
        build_register_body(order)


def test_money_goes_as_exact_json_numbers() -> None:
    text = dumps_exact_json(build_register_body(an_order()))
    assert '"total":57.20' in text
    assert '"modelUnitPrice":8.00' in text
    assert '"designUnitPrice":4.00' in text
    assert '"unitPrice":9.90' in text
    decoded = json.loads(text, parse_float=Decimal)
    assert decoded == build_register_body(an_order())
    assert isinstance(json.loads(text)["total"], float)  # a number, not a string


def test_exact_json_encoder() -> None:
    value = {"a": [Decimal("0.1"), Decimal("1E+2"), Decimal("-0.00"), 3, None, True, "x\"y"]}
    assert dumps_exact_json(value) == '{"a":[0.1,100,-0.00,3,null,true,"x\\"y"]}'
    for bad in (Decimal("NaN"), Decimal("Infinity"), float("inf")):
        with pytest.raises(ValueError):
            dumps_exact_json(bad)
    with pytest.raises(TypeError):
        dumps_exact_json({1: "x"})


def test_paths_quote_codes_whole() -> None:
    order = with_order(an_order(), order_id="A/B 1?")
    assert order_path(order) == "/v2/order/A%2FB%201%3F"
    line = with_l1_customization(an_order(), modification_id="m/1").lines[0]
    assert print_files_zip_path(line) == f"/v1/designs/{DESIGN_ID}/outputfiles/zip/m%2F1"
    assert print_files_zip_path(an_order().lines[0]) == (
        f"/v1/designs/{DESIGN_ID}/outputfiles/zip"
    )


# ----------------------------------------------------------------------------- token codes


def test_registration_token_speaks_for_the_customer_or_the_visitor() -> None:
    order = an_order()
    assert registration_code(order) == TokenCode("customercode", "C-1122")
    guest = with_order(order, customer={"email": "g@example.com"})
    assert registration_code(guest) == TokenCode("visitorcode", "sess-8f2c41")
    guest_without_session = with_order(guest, session_id=None)
    assert registration_code(guest_without_session) == TokenCode("visitorcode", "SHOP-100234")
    blank_customer = with_order(order, customer={"email": "g@example.com", "customer_id": " "})
    assert registration_code(blank_customer).kind == "visitorcode"


def test_token_answer_reads_either_spelling() -> None:
    granted = parse_token_answer(
        {"access_token": "t1", "token_type": "Bearer", "expires_in": 3600}
    )
    assert (granted.access_token, granted.expires_in) == ("t1", 3600.0)
    assert parse_token_answer({"access-token": "t2", "expires_in": "120"}).access_token == "t2"
    assert parse_token_answer({"access_token": "t3"}).expires_in is None
    assert parse_token_answer({"access_token": "t3", "expires_in": "soon"}).expires_in is None
    assert "t1" not in repr(granted)  # tokens stay out of logs
    bad: Any
    for bad in ({}, {"access_token": ""}, {"access_token": 5}, [], None):
        with pytest.raises(ValueError):
            parse_token_answer(bad)


def test_token_lifetime_keeps_a_safety_margin() -> None:
    assert token_lifetime(3600) == 3540  # a minute early
    assert token_lifetime(10) == 9  # a tenth early for short-lived tokens
    assert token_lifetime(0) == 0
    assert token_lifetime(-5) == 0
    assert token_lifetime(None) == DEFAULT_TOKEN_LIFETIME_S


# ----------------------------------------------------------------------------- other answers


def test_design_unit_price_is_read_exactly() -> None:
    example = {
        "designID": DESIGN_ID, "compositionID": None, "name": "string", "modelCode": "string",
        "modelID": 0, "previewimageurl": "string", "designUnitPercentagePrice": 0,
        "designUnitPrice": 0, "customerCode": "string", "visitorCode": "string",
        "previewFiles": [{"url": "string", "sideName": "string"}],
    }
    assert design_unit_price_from(example) == Decimal(0)
    body = json.dumps({**example, "designUnitPrice": 4.1}).encode()
    data = HttpAnswer(200, {}, body).read_json(Vendor.ZAKEKE, "get_design", exact_decimals=True)
    assert design_unit_price_from(data) == Decimal("4.1")
    assert design_unit_price_from({"designUnitPrice": "2.50"}) == Decimal("2.50")
    bad: Any
    for bad in ({}, {"designUnitPrice": None}, {"designUnitPrice": True},
                {"designUnitPrice": "x"}, {"designUnitPrice": "NaN"}, []):
        with pytest.raises(ValueError):
            design_unit_price_from(bad)


def test_zip_url_answer() -> None:
    assert zip_url_from({"url": "https://...."}) == "https://...."
    bad: Any
    for bad in ({}, {"url": ""}, {"url": 1}, "https://x", None):
        with pytest.raises(ValueError):
            zip_url_from(bad)


def test_order_ref_is_zakekes_id_as_string() -> None:
    assert order_ref_from(ORDER_EXAMPLE) == "0"
    assert order_ref_from({"id": 4711}) == "4711"
    assert order_ref_from({}) is None
    assert order_ref_from({"id": None}) is None


# ----------------------------------------------------------------------------- order summaries


def test_documented_example_order_is_read() -> None:
    summary = summarize_zakeke_order(an_order(), ORDER_EXAMPLE)
    # The example's one item is of another design ("string"): our design line has none yet.
    assert (summary.vendor_order_ref, summary.ready, summary.vendor_state) == ("0", False, "INPROCESS")
    example = an_order().model_dump(mode="json")
    example["lines"][0]["customization"]["design_id"] = "string"
    summary = summarize_zakeke_order(Order.model_validate(example), ORDER_EXAMPLE)
    # "string" is not a documented status, so the line is not READY; the word is passed on.
    assert (summary.ready, summary.vendor_state) == (False, "STRING")


def test_in_process_until_every_design_line_is_ready() -> None:
    order = an_order()
    data = zakeke_order([item("L1", DESIGN_ID, "INPROCESS"), item("L2", "", "READY")])
    summary = summarize_zakeke_order(order, data)
    assert (summary.vendor_order_ref, summary.ready, summary.vendor_state) == (
        "4711", False, "INPROCESS"
    )


def test_a_composition_item_without_files_does_not_hold_the_order_back() -> None:
    # Nothing says configurator items ever get print files: completion waits on designs only.
    order = an_order()
    data = zakeke_order([
        item("L1", DESIGN_ID, "READY", zip_url=ZIP, files=[PDF, PNG]),
        item("L2", "", "INPROCESS"),
    ])
    summary = summarize_zakeke_order(order, data)
    assert (summary.ready, summary.vendor_state) == (True, "READY")
    assert [entry.line.line_id for entry in summary.lines] == ["L1"]


def test_all_ready_gives_print_files_per_design_line() -> None:
    order = an_order()
    data = zakeke_order([
        item("L1", DESIGN_ID, "READY", zip_url=ZIP, files=[PDF, PNG]),
        item("L2", "", "ready"),
    ])
    summary = summarize_zakeke_order(order, data)
    assert summary.ready and summary.vendor_state == "READY"
    assert [entry.line.line_id for entry in summary.lines] == ["L1"]  # no composition line
    assert summary.lines[0].files == LinePrintFiles(
        line_id="L1",
        design_id=DESIGN_ID,
        modification_id=None,
        zip_url=ZIP,
        files=(PrintFileRef("PDF", PDF["url"]), PrintFileRef("PNG", PNG["url"])),
    )


def test_print_files_match_the_contract_example() -> None:
    expected = json.loads((FIXTURES / "print-files-ready.json").read_text())
    data = zakeke_order([item("L1", DESIGN_ID, "READY", zip_url=ZIP, files=[PDF, PNG])])
    files = summarize_zakeke_order(an_order(), data).lines[0].files
    assert files is not None
    assert files.line_id == expected["line_id"]
    assert files.design_id == expected["design_id"]
    assert files.modification_id == expected["modification_id"]
    assert files.zip_url == expected["zip_url"]
    assert [{"format": f.format, "url": f.url} for f in files.files] == expected["files"]


def test_item_without_zip_or_match_is_left_for_the_designs_api() -> None:
    order = an_order()
    summary = summarize_zakeke_order(order, zakeke_order([item("L1", DESIGN_ID, "READY")]))
    assert summary.ready
    assert summary.lines[0].files is not None and summary.lines[0].files.zip_url is None
    # Not paired by code, but by the line's design: ready, its zip from the designs API.
    summary = summarize_zakeke_order(order, zakeke_order([item("X", DESIGN_ID, "READY")]))
    assert summary.ready and summary.lines[0].files is not None
    assert summary.lines[0].files.zip_url is None
    # Only another design listed: the line's own is not there yet.
    summary = summarize_zakeke_order(order, zakeke_order([item("X", "other", "READY")]))
    assert not summary.ready and summary.lines[0].files is None


def test_unusable_file_entries_are_skipped() -> None:
    files: list[Any] = [
        PDF, {"type": "PNG"}, {"url": "https://x"}, "junk", {"type": "", "url": "u"},
    ]
    data = zakeke_order([item("L1", DESIGN_ID, "READY", zip_url=ZIP, files=files)])
    line_files = summarize_zakeke_order(an_order(), data).lines[0].files
    assert line_files is not None and line_files.files == (PrintFileRef("PDF", PDF["url"]),)


def test_no_items_yet_is_in_process_unless_nothing_is_to_be_rendered() -> None:
    order = an_order()
    summary = summarize_zakeke_order(order, zakeke_order([]))
    assert (summary.ready, summary.vendor_state) == (False, "INPROCESS")
    assert not summarize_zakeke_order(order, {"id": 1}).ready
    composition_only = Order.model_validate({
        **order.model_dump(mode="json"), "lines": [order.lines[1].model_dump(mode="json")],
    })
    summary = summarize_zakeke_order(composition_only, zakeke_order([]))
    assert (summary.ready, summary.lines) == (True, ())


def test_items_match_by_code_first_then_by_design() -> None:
    data = an_order().model_dump(mode="json")
    data["lines"] = [
        {"line_id": "A", "sku": "S", "quantity": 1, "unit_price": "1.00",
         "customization": {"provider": "zakeke", "design_id": "D1"}},
        {"line_id": "B", "sku": "S", "quantity": 1, "unit_price": "1.00",
         "customization": {"provider": "zakeke", "design_id": "D1", "modification_id": "m2"}},
        {"line_id": "C", "sku": "S", "quantity": 1, "unit_price": "1.00",
         "customization": {"provider": "zakeke", "design_id": "D3"}},
    ]
    order = Order.model_validate(data)
    # Item "B" is B's by code even though A could take it by design; A falls back to the
    # other D1 item, C to the D3 item with a code Zakeke made up.
    items = [item("B", "D1", "READY"), item("zz", "D1", "READY"), item("yy", "D3", "READY")]
    matched = match_design_items(design_lines(order), items)
    assert matched["B"] is items[0]
    assert matched["A"] is items[1]
    assert matched["C"] is items[2]
    summary = summarize_zakeke_order(order, zakeke_order(items))
    b = next(entry for entry in summary.lines if entry.line.line_id == "B")
    assert b.files is not None and b.files.modification_id == "m2"


def test_answers_not_shaped_like_an_order_are_refused() -> None:
    bad: Any
    for bad in ([], "x", {"items": {}}, {"items": ["x"]}):
        with pytest.raises(ValueError):
            summarize_zakeke_order(an_order(), bad)


# ----------------------------------------------------------------------------- errors


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> HttpAnswer:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return HttpAnswer(status, headers or {}, raw)


DESIGN_NOT_FOUND = {"message": f"Design id: {DESIGN_ID} not found", "errorCode": None}


@pytest.mark.parametrize(
    ("operation", "status", "expected"),
    [
        ("register_order", 400, VendorRejected),
        ("register_order", 404, VendorRejected),
        ("register_order", 409, VendorRejected),
        ("register_order", 422, VendorRejected),
        ("get_design", 404, VendorRejected),
        ("get_order", 401, VendorAuthFailed),
        ("get_order", 403, VendorAuthFailed),
        ("get_order", 429, VendorThrottled),
        ("get_order", 500, VendorUnavailable),
        ("register_order", 502, VendorUnavailable),
        ("register_order", 503, VendorUnavailable),
        ("get_order", 302, VendorUnavailable),
        ("token", 400, VendorAuthFailed),
        ("token", 401, VendorAuthFailed),
        ("token", 403, VendorAuthFailed),
        # A wrong base URL: every order would be rejected, were it read as a refusal.
        ("token", 404, VendorAuthFailed),
        ("token", 405, VendorAuthFailed),
        ("token", 429, VendorThrottled),
        ("token", 503, VendorUnavailable),
    ],
)
def test_every_status_maps_to_one_error(operation: str, status: int, expected: type) -> None:
    error = zakeke_error(operation, answer(status, DESIGN_NOT_FOUND))
    assert type(error) is expected
    assert error.status == status and error.operation == operation
    assert error.retriable is (expected is not VendorRejected)


def test_rejection_carries_zakekes_message() -> None:
    error = zakeke_error("register_order", answer(400, {
        "message": "Visitor and customer code were not sent into authentication OAuth Token",
        "errorCode": None,
    }))
    assert isinstance(error, VendorRejected)
    assert error.message == (
        "Visitor and customer code were not sent into authentication OAuth Token"
    )
    plain = zakeke_error("register_order", answer(400, b"Invalid order"))
    assert plain.message == "Invalid order"


def test_retry_after_is_kept() -> None:
    throttled = zakeke_error("get_order", answer(429, None, {"Retry-After": "7"}))
    assert isinstance(throttled, VendorThrottled) and throttled.retry_after == 7
    down = zakeke_error("get_order", answer(503, None, {"Retry-After": "3"}))
    assert isinstance(down, VendorUnavailable) and down.retry_after == 3


def test_unreadable_success_body_is_an_outage() -> None:
    # 100,000-deep nesting once let a bare RecursionError escape (an adapter bug path).
    for body in (b"", b"<html>", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(VendorUnavailable):
            HttpAnswer(200, {}, body).read_json(Vendor.ZAKEKE, "get_order", exact_decimals=True)
    read = answer(200, b'{"id": 1, "x": 1.10}').read_json(Vendor.ZAKEKE, "get_order", exact_decimals=True)
    assert read == {"id": 1, "x": Decimal("1.10")}


# ----------------------------------------------------------------------------- names and numbers


def names_and_numbers_order() -> Order:
    """One design, a modification per line (Zakeke's Names and Numbers tool)."""
    data = an_order().model_dump(mode="json")
    base = data["lines"][0]
    data["lines"] = [
        {**base, "line_id": "N1", "customization": {**base["customization"], "modification_id": "M-ANNA"}},
        {**base, "line_id": "N2", "customization": {**base["customization"], "modification_id": "M-BOB"}},
    ]
    return Order.model_validate(data)


def modification_item(modification_id: str, status: str, zip_url: str) -> dict[str, Any]:
    return {"design": DESIGN_ID, "designModificationID": modification_id,
            "printFilesStatus": status, "printingFilesZip": zip_url, "printingFiles": []}


def test_names_and_numbers_lines_get_their_own_files_by_modification_id() -> None:
    # Zakeke lists the items in its own order and does not echo our line codes.
    data = zakeke_order([modification_item("M-BOB", "READY", "https://z/bob.zip"),
                         modification_item("M-ANNA", "READY", "https://z/anna.zip")])
    summary = summarize_zakeke_order(names_and_numbers_order(), data)
    assert summary.ready
    zips = {entry.line.line_id: entry.files.zip_url for entry in summary.lines if entry.files}
    assert zips == {"N1": "https://z/anna.zip", "N2": "https://z/bob.zip"}


def test_names_and_numbers_lines_are_never_given_files_by_design_alone() -> None:
    # Neither code nor modification echoed: the items cannot say which line they are, so
    # each line's files come from the designs API by its own modification id.
    plain = [{"design": DESIGN_ID, "printFilesStatus": "READY", "printingFilesZip": "https://z/?.zip"}] * 2
    summary = summarize_zakeke_order(names_and_numbers_order(), zakeke_order(plain))
    assert summary.ready
    assert [entry.files for entry in summary.lines] == [None, None]
    plain[1] = {**plain[1], "printFilesStatus": "INPROCESS"}
    assert not summarize_zakeke_order(names_and_numbers_order(), zakeke_order(plain)).ready


def test_one_names_and_numbers_item_still_in_process_holds_its_line_back() -> None:
    data = zakeke_order([modification_item("M-ANNA", "READY", "https://z/anna.zip"),
                         modification_item("M-BOB", "INPROCESS", "")])
    summary = summarize_zakeke_order(names_and_numbers_order(), data)
    assert (summary.ready, summary.vendor_state) == (False, "INPROCESS")


# ----------------------------------------------------------------------------- percentage prices


@pytest.mark.parametrize(("answer", "unit_price", "expected"), [
    # 25% of a 12.00 product is 3.00: the customer paid 15.00.
    ({"designUnitPercentagePrice": Decimal(25)}, Decimal("15.00"), Decimal("3.00")),
    ({"designUnitPercentagePrice": Decimal("12.5"), "designUnitPrice": Decimal(0)},
     Decimal("11.24"), Decimal("1.25")),
    # One or the other, never both: the percentage where it is set.
    ({"designUnitPercentagePrice": 10, "designUnitPrice": "1.50"}, Decimal("22"), Decimal("2.00")),
    ({"designUnitPercentagePrice": 0, "designUnitPrice": "4.10"}, Decimal("20"), Decimal("4.10")),
])
def test_a_percentage_design_price_is_that_share_of_the_product_price(
        answer: dict[str, Any], unit_price: Decimal, expected: Decimal) -> None:
    """Page: designUnitPercentagePrice, "Percentage to be applied to the product base unit
    price to obtain the mark-up price"; designUnitPrice, "Unit mark-up price to apply". The
    line's unit_price includes the design (contract)."""
    assert design_unit_price_from(answer, unit_price) == expected


def test_a_design_price_above_the_lines_price_is_refused() -> None:
    order = an_order()
    lines = [line.model_dump(mode="json") for line in order.lines]
    lines[0]["customization"]["design_unit_price"] = "99.00"
    with pytest.raises(ValueError, match="more than its unit_price"):
        build_register_body(an_order(lines=lines))


def test_a_percentage_that_is_not_a_number_is_an_unreadable_answer() -> None:
    with pytest.raises(ValueError, match="designUnitPercentagePrice"):
        design_unit_price_from({"designUnitPercentagePrice": "lots"}, Decimal(1))


# ----------------------------------------------------------------------------- through the fake


async def test_a_first_submit_posts_with_a_customer_token_and_no_lookup_before() -> None:
    def zakeke(request: SentRequest) -> HttpAnswer:
        if request.path == "/token":
            code = (request.form or {}).get("customercode", "read")
            return HttpAnswer(200, {}, json.dumps({"access_token": f"tok-{code}",
                                                   "expires_in": 3600}).encode())
        if request.method == "POST":
            return HttpAnswer(200, {}, b"")
        return HttpAnswer(404, {}, b'{"message": "not found"}')  # the read still lags

    settings = ZakekeSettings(client_id="id", client_secret=SecretStr("secret"))
    transport = MockTransport(zakeke)
    adapter = ZakekeAdapter(settings, http=VendorHttp.for_vendor(Vendor.ZAKEKE, settings,
                                                                 transport=transport))
    observation = await adapter.submit(an_order(), PairState())

    assert observation == Observation(VendorStatus.SUBMITTED)  # registered, id not known yet
    assert [(r.method, r.path) for r in transport.requests] == [
        ("POST", "/token"), ("POST", "/v2/order"), ("POST", "/token"), ("GET", "/v2/order/SHOP-100234")]
    register = transport.requests[1]
    assert register.headers == {"Authorization": "Bearer tok-C-1122"}
    assert register.json_body["orderCode"] == "SHOP-100234"


async def test_an_order_in_another_currency_than_the_accounts_is_rejected_before_any_call() -> None:
    """Contract: with ORDERFLOW_ZAKEKE__BASE_CURRENCY set, an order in another currency is
    `rejected` for Zakeke with a reason naming both (Zakeke's prices are the account's)."""
    settings = ZakekeSettings(client_id="id", client_secret=SecretStr("secret"),
                              base_currency="EUR")
    transport = MockTransport(lambda request: HttpAnswer(500, {}, b""))
    adapter = ZakekeAdapter(settings, http=VendorHttp.for_vendor(Vendor.ZAKEKE, settings,
                                                                 transport=transport))
    with pytest.raises(VendorRejected, match="the order is in USD, the Zakeke account's prices in EUR"):
        await adapter.submit(an_order(currency="USD"), PairState())
    assert transport.requests == []


async def test_a_print_file_on_a_host_not_allowed_is_never_read() -> None:
    """Contract: files are read only from the host of ORDERFLOW_ZAKEKE__BASE_URL or a host
    listed in ORDERFLOW_ZAKEKE__FILE_HOSTS."""
    def zakeke(request: SentRequest) -> HttpAnswer:
        if request.path == "/token":
            return HttpAnswer(200, {}, b'{"access_token": "t", "expires_in": 3600}')
        if request.path.startswith("/v1/designs/"):
            return HttpAnswer(200, {}, b'"https://elsewhere.example/file.pdf"')
        raise AssertionError(f"read {request.path}")

    for hosts, allowed in ((frozenset(), False), (frozenset({"elsewhere.example"}), True)):
        settings = ZakekeSettings(client_id="id", client_secret=SecretStr("secret"),
                                  file_hosts=hosts)
        adapter = ZakekeAdapter(settings, http=VendorHttp.for_vendor(
            Vendor.ZAKEKE, settings, transport=MockTransport(zakeke)))
        line = an_order().lines[0]
        if allowed:
            with pytest.raises(AssertionError, match=r"read https://elsewhere\.example/file\.pdf"):
                async with adapter.print_file(line, "PDF"):
                    pass
        else:
            with pytest.raises(VendorRejected, match="not a host files may be read from"):
                async with adapter.print_file(line, "PDF"):
                    pass


def test_unable_to_place_the_order_is_a_refusal_of_that_order_not_an_outage() -> None:
    """Legacy order page: "500 Unable to place the order". A bare 500 stays an outage."""
    refused = zakeke_error("register_order", answer(500, b'{"message": "Unable to place the order"}'))
    assert isinstance(refused, VendorRejected) and not refused.retriable
    down = zakeke_error("register_order", answer(500, b'{"message": "Internal Server Error"}'))
    assert isinstance(down, VendorUnavailable) and down.retriable
