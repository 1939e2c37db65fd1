"""The exported contracts: the committed files in docs/schemas are exactly what the models
produce, the contract's examples validate against them, and the schemas refuse what the
models refuse, so a consumer validating with them sees the rules we enforce."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from orderflow.config.settings import TopicSettings
from orderflow.contracts import schema
from orderflow.contracts.events import (
    ADDED_OPTIONAL_FIELDS,
    OrderCreated,
    OrderPrintFilesReady,
    OrderVendorStatus,
    Vendor,
    VendorStatus,
    status_event_id,
    wire_json,
)

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
FIXTURES = ROOT / "tests" / "fixtures"
REGENERATE = "run `make schemas` (python -m orderflow.contracts.schema docs/schemas) and commit the result"

EXAMPLES = {
    "order-created.json": "order.created.v1.json",
    "order-created-minimal.json": "order.created.v1.json",
    "vendor-status.json": "order.vendor_status.v1.json",
    "print-files-ready.json": "order.print_files_ready.v1.json",
}
MODELS: dict[str, type[OrderCreated | OrderVendorStatus | OrderPrintFilesReady]] = {
    "order.created.v1.json": OrderCreated,
    "order.vendor_status.v1.json": OrderVendorStatus,
    "order.print_files_ready.v1.json": OrderPrintFilesReady,
}


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def validator(file_name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / file_name).read_text()))


# ----------------------------------------------------------------------------- drift


@pytest.mark.parametrize("name", sorted(schema.render()))
def test_committed_file_matches_the_models(name: str) -> None:
    path = SCHEMAS / name
    assert path.exists(), f"docs/schemas/{name} is missing: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == schema.render()[name], (
        f"docs/schemas/{name} has drifted from the event models: {REGENERATE}")


def test_no_stale_files_in_the_schema_directory() -> None:
    present = {p.name for p in SCHEMAS.iterdir() if p.is_file()}
    stale = present - set(schema.render())
    assert not stale, f"docs/schemas holds files the models no longer produce: {sorted(stale)}"


def test_the_command_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schema.main([str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert written == schema.render()
    assert len(capsys.readouterr().out.splitlines()) == len(written)


@pytest.mark.parametrize("file_name", sorted(MODELS))
def test_every_schema_is_a_valid_draft_2020_12_schema(file_name: str) -> None:
    document = json.loads((SCHEMAS / file_name).read_text())
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize(("example_name", "file_name"), sorted(EXAMPLES.items()))
def test_contract_example_validates_against_the_exported_schema(example_name: str, file_name: str) -> None:
    errors = [e.message for e in validator(file_name).iter_errors(example(example_name))]
    assert errors == []


@pytest.mark.parametrize(("example_name", "file_name"), sorted(EXAMPLES.items()))
def test_what_we_write_validates_against_the_exported_schema(example_name: str, file_name: str) -> None:
    """Our own serialization of each example (dates, money, nulls, defaults) is valid too."""
    written = MODELS[file_name].model_validate(example(example_name)).model_dump(mode="json")
    assert [e.message for e in validator(file_name).iter_errors(written)] == []


def test_output_schemas_require_every_field_since_every_field_is_written() -> None:
    """Every field of a v1 event is written (null where there is nothing), so the schema
    requires it; the optional fields added later travel only when set, and are not."""
    for file_name in ("order.vendor_status.v1.json", "order.print_files_ready.v1.json"):
        document = json.loads((SCHEMAS / file_name).read_text())
        assert document["required"] == [name for name in document["properties"]
                                        if name not in ADDED_OPTIONAL_FIELDS]
    minimal = json.loads(wire_json(OrderVendorStatus(
        event_id=status_event_id("A-1", Vendor.REEVOO, VendorStatus.SUBMITTED, None),
        occurred_at="2026-11-22T10:00:00Z",
        order_id="A-1", vendor=Vendor.REEVOO, status=VendorStatus.SUBMITTED, terminal=False,
        source_event_id="e-1",
    )))
    assert set(minimal) == set(json.loads((SCHEMAS / "order.vendor_status.v1.json").read_text())["required"])


# ------------------------------------------------ the schemas refuse what the models refuse

Change = Callable[[dict[str, Any]], None]


def _line(index: int, **fields: Any) -> Change:
    def change(event: dict[str, Any]) -> None:
        event["order"]["lines"][index].update(fields)
    return change


def _order(**fields: Any) -> Change:
    def change(event: dict[str, Any]) -> None:
        event["order"].update(fields)
    return change


def _top(**fields: Any) -> Change:
    def change(event: dict[str, Any]) -> None:
        event.update(fields)
    return change


def _drop_order_field(name: str) -> Change:
    def change(event: dict[str, Any]) -> None:
        del event["order"][name]
    return change


REFUSED: list[tuple[str, str, Change]] = [
    ("order-created.json", "money as a float", _order(total=57.2)),
    ("order-created.json", "money in exponent notation", _order(total="5.72E+1")),
    ("order-created.json", "money with a comma", _line(0, unit_price="12,00")),
    ("order-created.json", "both design_id and composition_id",
     _line(0, customization={"provider": "zakeke", "design_id": "d", "composition_id": "c"})),
    ("order-created.json", "neither design_id nor composition_id",
     _line(0, customization={"provider": "zakeke", "design_id": None})),
    ("order-created.json", "smake fulfilment without variant_id or sku",
     _line(0, fulfilment={"provider": "smake"})),
    ("order-created.json", "customization without a provider",
     _line(1, customization={"composition_id": "x"})),
    ("order-created.json", "quantity 0", _line(0, quantity=0)),
    ("order-created.json", "no lines", _order(lines=[])),
    ("order-created.json", "order_id too long", _order(order_id="x" * 65)),
    ("order-created.json", "empty order_id", _order(order_id="")),
    ("order-created.json", "lower-case currency", _order(currency="eur")),
    ("order-created.json", "no customer", _drop_order_field("customer")),
    ("order-created.json", "wrong event_type", _top(event_type="order.updated")),
    ("order-created.json", "schema_version 2", _top(schema_version=2)),
    ("vendor-status.json", "in_progress marked terminal", _top(terminal=True)),
    ("vendor-status.json", "completed not marked terminal", _top(status="completed", terminal=False)),
    ("vendor-status.json", "unknown vendor", _top(vendor="acme")),
    ("print-files-ready.json", "a vendor other than zakeke", _top(vendor="smake")),
]

ACCEPTED: list[tuple[str, str, Change]] = [
    ("order-created.json", "a customization by a provider orderflow does not know",
     _line(1, customization={"provider": "other", "composition_id": "x"})),
    ("order-created.json", "a fulfilment by a provider orderflow does not know",
     _line(2, fulfilment={"provider": "printful", "sku": "X"})),
    ("order-created.json", "an unknown optional field (upstream may add some)", _order(gift_note="hi")),
    ("order-created.json", "composition line with a null design_id",
     _line(1, customization={"provider": "zakeke", "design_id": None, "composition_id": "c"})),
    ("order-created.json", "smake fulfilment by both variant_id and sku",
     _line(0, fulfilment={"provider": "smake", "variant_id": 3, "sku": "S"})),
    ("order-created.json", "negative money (a refund line)", _line(2, unit_price="-1.50")),
    ("vendor-status.json", "a terminal status marked terminal",
     _top(status="failed", terminal=True, reason="out of stock")),
]


def _schema_for(example_name: str) -> str:
    return EXAMPLES[example_name]


@pytest.mark.parametrize(("example_name", "what", "change"), REFUSED, ids=[w for _, w, _ in REFUSED])
def test_schema_and_model_both_refuse(example_name: str, what: str, change: Change) -> None:
    event = copy.deepcopy(example(example_name))
    change(event)
    file_name = _schema_for(example_name)
    with pytest.raises(ValidationError):
        MODELS[file_name].model_validate_json(json.dumps(event))
    assert not validator(file_name).is_valid(event), f"the exported schema accepts {what}"


@pytest.mark.parametrize(("example_name", "what", "change"), ACCEPTED, ids=[w for _, w, _ in ACCEPTED])
def test_schema_and_model_both_accept(example_name: str, what: str, change: Change) -> None:
    event = copy.deepcopy(example(example_name))
    change(event)
    file_name = _schema_for(example_name)
    MODELS[file_name].model_validate_json(json.dumps(event))
    assert [e.message for e in validator(file_name).iter_errors(event)] == []


def test_duplicate_line_ids_are_documented_since_json_schema_cannot_refuse_them() -> None:
    order = json.loads((SCHEMAS / "order.created.v1.json").read_text())["$defs"]["Order"]
    assert "unique" in order["properties"]["lines"]["description"]


# ----------------------------------------------------------------------------- AsyncAPI


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMAS / schema.ASYNCAPI_FILE).read_text())
    return document


def _resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_asyncapi_topics_are_the_setting_defaults() -> None:
    defaults = TopicSettings()
    addresses = {name: channel["address"] for name, channel in asyncapi()["channels"].items()}
    assert addresses == {
        "ordersCreated": defaults.orders_created,
        "orderStatus": defaults.status,
        "printFilesReady": defaults.print_files_ready,
        "deadLetters": defaults.dead_letter,
        "tracking": defaults.tracking,
    }


def test_asyncapi_directions_are_orderflows() -> None:
    by_channel: dict[str, set[str]] = {}
    for operation in asyncapi()["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        by_channel.setdefault(channel, set()).add(operation["action"])
    assert by_channel == {
        "ordersCreated": {"receive"}, "orderStatus": {"send"}, "printFilesReady": {"send"},
        "deadLetters": {"send"}, "tracking": {"send", "receive"},
    }


def test_asyncapi_payloads_refer_to_the_exported_schemas_and_are_keyed_by_order_id() -> None:
    messages = asyncapi()["components"]["messages"]
    for name, file_name in (("orderCreated", "order.created.v1.json"),
                            ("orderVendorStatus", "order.vendor_status.v1.json"),
                            ("orderPrintFilesReady", "order.print_files_ready.v1.json")):
        assert messages[name]["payload"] == {"$ref": f"./{file_name}"}
        assert messages[name]["contentType"] == "application/json"
        assert "order_id" in messages[name]["bindings"]["kafka"]["key"]["description"]


def test_asyncapi_dead_letter_headers_are_the_contracts() -> None:
    headers = asyncapi()["components"]["messages"]["deadLetter"]["headers"]
    expected = ["orderflow.error.class", "orderflow.error.message", "orderflow.original.topic",
                "orderflow.original.partition", "orderflow.original.offset", "orderflow.failed_at"]
    assert headers["required"] == expected
    # The required six first; the optional additions after them (contracts/dead_letters.py).
    assert list(headers["properties"])[:6] == expected
    assert set(list(headers["properties"])[6:]) == {
        "orderflow.error.reason", "orderflow.value.omitted", "orderflow.key.omitted"}
    assert all(p["type"] == "string" for p in headers["properties"].values())


def test_every_asyncapi_reference_resolves() -> None:
    document = asyncapi()
    for ref in _refs(document):
        if ref.startswith("#/"):
            _resolve(document, ref)
        else:
            assert (SCHEMAS / ref).is_file(), f"{ref} is not a file in docs/schemas"
