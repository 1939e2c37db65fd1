"""The event contracts exported for everyone else: JSON Schemas and an AsyncAPI document.

The pydantic models in `events.py` are the source of truth. This module turns them into
JSON Schema (draft 2020-12), one file per event, and describes the topics that carry them
in an AsyncAPI 3.0 document whose payloads refer to those files. The results are committed
under `docs/schemas/`; a unit test fails when they drift from the models.

    python -m orderflow.contracts.schema docs/schemas     (what `make schemas` runs)

Two refinements on top of what pydantic derives:
- rules the models check in code that JSON Schema can say too (exactly one of `design_id`
  or `composition_id`; a Smake `variant_id` or `sku`; `terminal` matching `status`) are
  written into the schema, so that a consumer validating with it refuses what we refuse;
- output events always carry every field (null where there is nothing), so every field of
  an output schema is `required`, and a consumer may rely on each one being present.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from orderflow.config.settings import TopicSettings, env_name
from orderflow.contracts import dead_letters
from orderflow.contracts.events import (
    ADDED_OPTIONAL_FIELDS,
    OrderCancellationRefused,
    OrderCancelled,
    OrderCreated,
    OrderPrintFilesReady,
    OrderShipmentTracking,
    OrderVendorStatus,
    VendorStatus,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
# The version of the API the document describes: topics plus the v1 events. Bump it when
# an optional field or a topic is added (renaming or removing is not allowed by the contract).
API_VERSION = "1.1.0"
KAFKA_BINDING_VERSION = "0.5.0"

ASYNCAPI_FILE = "asyncapi.json"

Mode = Literal["validation", "serialization"]


class EventSchema:
    """One exported event: its model, the file it is written to, and which side of the model
    the schema describes (what we accept for an input, what we write for an output)."""

    def __init__(self, event_type: str, model: type[BaseModel], mode: Mode, summary: str) -> None:
        self.event_type = event_type
        self.model = model
        self.mode = mode
        self.summary = summary

    @property
    def file_name(self) -> str:
        return f"{self.event_type}.v1.json"


ORDER_CREATED = EventSchema(
    "order.created", OrderCreated, "validation",
    "An order placed at checkout, published upstream; orderflow routes it to the vendors.",
)
VENDOR_STATUS = EventSchema(
    "order.vendor_status", OrderVendorStatus, "serialization",
    "One event per change of an (order, vendor) pair; exactly one terminal event per pair.",
)
PRINT_FILES_READY = EventSchema(
    "order.print_files_ready", OrderPrintFilesReady, "serialization",
    "One event per Zakeke design line once its print-ready files exist.",
)
SHIPMENT_TRACKING = EventSchema(
    "order.shipment_tracking", OrderShipmentTracking, "serialization",
    "A pair's tracking numbers that became known after its terminal completed (on the status "
    "topic; told apart by event_type).",
)
ORDER_CANCELLED = EventSchema(
    "order.cancelled", OrderCancelled, "validation",
    "The customer or the shop cancelled the whole order (on the input topic; told apart from "
    "order.created by event_type).",
)
CANCELLATION_REFUSED = EventSchema(
    "order.cancellation_refused", OrderCancellationRefused, "serialization",
    "A pair that could not be cancelled: the vendor refused, or cannot withdraw an order it "
    "took (on the status topic; told apart by event_type).",
)
EVENTS: tuple[EventSchema, ...] = (ORDER_CREATED, VENDOR_STATUS, PRINT_FILES_READY, SHIPMENT_TRACKING,
                                   ORDER_CANCELLED, CANCELLATION_REFUSED)

# Headers of a dead-letter record (all UTF-8 strings), as the contract names them.
DEAD_LETTER_HEADERS: dict[str, str] = dead_letters.REQUIRED


# ----------------------------------------------------------------------------- JSON Schema


def event_schema(event: EventSchema) -> dict[str, Any]:
    """The JSON Schema of one event, refined as the module docstring says."""
    generated = event.model.model_json_schema(mode=event.mode)
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, **generated}
    definitions = schema.get("$defs", {})
    if "ZakekeCustomization" in definitions:
        _exactly_one_non_null(definitions["ZakekeCustomization"], ("design_id", "string"),
                              ("composition_id", "string"))
    if "SmakeFulfilment" in definitions:
        _at_least_one_non_null(definitions["SmakeFulfilment"], ("variant_id", "integer"),
                               ("sku", "string"))
    if "Order" in definitions:
        lines = definitions["Order"]["properties"]["lines"]
        lines["description"] = "line_id values are unique within an order."
    if event.model is OrderVendorStatus:
        _terminal_matches_status(schema)
    if event.mode == "serialization":
        _all_fields_required(schema)
    return schema


def _non_null(name: str, json_type: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": json_type}}}


def _exactly_one_non_null(target: dict[str, Any], *fields: tuple[str, str]) -> None:
    _check_properties(target, [name for name, _ in fields])
    target["oneOf"] = [_non_null(name, json_type) for name, json_type in fields]


def _at_least_one_non_null(target: dict[str, Any], *fields: tuple[str, str]) -> None:
    _check_properties(target, [name for name, _ in fields])
    target["anyOf"] = [_non_null(name, json_type) for name, json_type in fields]


def _terminal_matches_status(schema: dict[str, Any]) -> None:
    _check_properties(schema, ["status", "terminal"])
    schema["if"] = {"properties": {"status": {"enum": [s.value for s in VendorStatus if s.terminal]}}}
    schema["then"] = {"properties": {"terminal": {"const": True}}}
    schema["else"] = {"properties": {"terminal": {"const": False}}}


def _check_properties(target: dict[str, Any], names: list[str]) -> None:
    # A refinement must never outlive a renamed field silently.
    missing = [name for name in names if name not in target.get("properties", {})]
    if missing:
        raise RuntimeError(f"schema refinement names unknown fields {missing}: update schema.py")


def _all_fields_required(schema: dict[str, Any]) -> None:
    for target in (schema, *schema.get("$defs", {}).values()):
        if target.get("type") == "object" and "properties" in target:
            target["required"] = [name for name in target["properties"]
                                  if target is not schema or name not in ADDED_OPTIONAL_FIELDS]


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every event of the contract."""
    return {event.file_name: event_schema(event) for event in EVENTS}


# ----------------------------------------------------------------------------- AsyncAPI


def _topic_description(field: str, text: str) -> str:
    return f"{text} Topic name from setting `topics.{field}` (`{env_name('topics', field)}`)."


def _kafka_key(description: str, **schema: Any) -> dict[str, Any]:
    return {"kafka": {"key": {"type": "string", "description": description, **schema},
                      "bindingVersion": KAFKA_BINDING_VERSION}}


def _channel(address: str, field: str, text: str, messages: dict[str, str],
             **topic_configuration: Any) -> dict[str, Any]:
    binding: dict[str, Any] = {"topic": address, "bindingVersion": KAFKA_BINDING_VERSION}
    if topic_configuration:
        binding["topicConfiguration"] = topic_configuration
    return {
        "address": address,
        "description": _topic_description(field, text),
        "messages": {name: {"$ref": f"#/components/messages/{ref}"} for name, ref in messages.items()},
        "bindings": {"kafka": binding},
    }


def _operation(action: Literal["send", "receive"], channel: str, message: str, summary: str,
               **kafka: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
    }
    if kafka:
        operation["bindings"] = {"kafka": {**kafka, "bindingVersion": KAFKA_BINDING_VERSION}}
    return operation


def asyncapi_document(topics: TopicSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of orderflow's topics, seen from orderflow (it `receive`s
    orders and `send`s the rest). Payloads refer to the JSON Schema files by relative path."""
    topics = topics or TopicSettings()
    order_id_key = _kafka_key("The order_id of the order.", minLength=1, maxLength=64)
    messages: dict[str, Any] = {}
    for name, event in (("orderCreated", ORDER_CREATED), ("orderVendorStatus", VENDOR_STATUS),
                        ("orderPrintFilesReady", PRINT_FILES_READY),
                        ("orderShipmentTracking", SHIPMENT_TRACKING),
                        ("orderCancelled", ORDER_CANCELLED),
                        ("orderCancellationRefused", CANCELLATION_REFUSED)):
        messages[name] = {
            "name": event.event_type,
            "title": f"{event.event_type} v1",
            "summary": event.summary,
            "contentType": "application/json",
            "payload": {"$ref": f"./{event.file_name}"},
            "bindings": order_id_key,
        }
    messages["deadLetter"] = {
        "name": "dead_letter",
        "title": "Dead letter",
        "summary": "An input record that is not valid JSON or not a valid order.created v1.",
        "description": "Key and value are the original record's bytes, unchanged; the headers "
                       "say why it was refused and where it came from. orderflow commits the "
                       "original offset once the dead letter is written, so a bad record never "
                       "blocks its partition.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {name: {"type": "string", "description": text}
                           for name, text in {**DEAD_LETTER_HEADERS,
                                              **dead_letters.OPTIONAL}.items()},
            "required": list(DEAD_LETTER_HEADERS),
        },
        "payload": {"description": "The original record value, byte for byte."},
        "bindings": _kafka_key("The original record's key, unchanged."),
    }
    messages["trackingRecord"] = {
        "name": "tracking_record",
        "title": "Tracking record (internal)",
        "summary": "orderflow's own state of one (order, vendor) job. Not a contract: its "
                   "format is orderflow's choice and may change; do not consume it.",
        "contentType": "application/json",
        "payload": {"type": "object"},
        "bindings": _kafka_key("`{vendor}/{order_id}`; a null value forgets the job."),
    }

    channels = {
        "ordersCreated": _channel(
            topics.orders_created, "orders_created",
            "Orders from checkout, and their cancellations. Producers may use any partitioner.",
            {"orderCreated": "orderCreated", "orderCancelled": "orderCancelled"}),
        "orderStatus": _channel(
            topics.status, "status",
            "Status of each (order, vendor) pair, and tracking numbers known only after it "
            "completed. event_id is deterministic: drop repeats by it.",
            {"orderVendorStatus": "orderVendorStatus",
             "orderShipmentTracking": "orderShipmentTracking",
             "orderCancellationRefused": "orderCancellationRefused"}),
        "printFilesReady": _channel(
            topics.print_files_ready, "print_files_ready",
            "Print-ready files of Zakeke design lines. event_id is deterministic.",
            {"orderPrintFilesReady": "orderPrintFilesReady"}),
        "deadLetters": _channel(
            topics.dead_letter, "dead_letter",
            "Input records orderflow could not read, with the reason in headers.",
            {"deadLetter": "deadLetter"}),
        "tracking": _channel(
            topics.tracking, "tracking",
            "Internal: one record per (order, vendor) job, the service's only state. orderflow "
            "creates it (compacted, as many partitions as the input topic) and writes each job "
            "to the partition number of the input record it came from.",
            {"trackingRecord": "trackingRecord"}, **{"cleanup.policy": ["compact"]}),
    }
    group_id = {"type": "string", "description": f"Setting `kafka.group_id` "
                f"(`{env_name('kafka', 'group_id')}`), default `orderflow`."}
    operations = {
        "receiveOrderCreated": _operation(
            "receive", "ordersCreated", "orderCreated",
            "Route each order to its vendors; invalid records go to the dead-letter topic.",
            groupId=group_id),
        "receiveOrderCancelled": _operation(
            "receive", "ordersCreated", "orderCancelled",
            "Cancel every pair of the order wherever it is owned, before or after the order.",
            groupId=group_id),
        "sendCancellationRefused": _operation(
            "send", "orderStatus", "orderCancellationRefused",
            "Say that a pair could not be cancelled, and why."),
        "sendVendorStatus": _operation(
            "send", "orderStatus", "orderVendorStatus",
            "Announce each change of an (order, vendor) pair."),
        "sendShipmentTracking": _operation(
            "send", "orderStatus", "orderShipmentTracking",
            "Announce tracking numbers that became known after a pair completed."),
        "sendPrintFilesReady": _operation(
            "send", "printFilesReady", "orderPrintFilesReady",
            "Announce the print-ready files of each Zakeke design line."),
        "sendDeadLetter": _operation(
            "send", "deadLetters", "deadLetter", "Set aside an unreadable input record."),
        "sendTrackingRecord": _operation(
            "send", "tracking", "trackingRecord", "Record a job's new state."),
        "receiveTrackingRecord": _operation(
            "receive", "tracking", "trackingRecord",
            "Rebuild the jobs of newly assigned partitions."),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:orderflow",
        "info": {
            "title": "orderflow",
            "version": API_VERSION,
            "description": "Consumes order.created, routes each order to the vendors that must "
                           "act on it (Zakeke, Smake, Reevoo), follows their work and publishes "
                           "what happened. Values are UTF-8 JSON and keys UTF-8 strings, except "
                           "dead letters, which keep the original bytes. Topic names are "
                           "settings; the defaults are shown.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Setting `kafka.bootstrap_servers` "
                               f"(`{env_name('kafka', 'bootstrap_servers')}`); the default is shown.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


# ----------------------------------------------------------------------------- files


def render() -> dict[str, str]:
    """Every exported file's name and exact text (stable: what is committed is compared to it)."""
    documents: dict[str, Any] = {**event_schemas(), ASYNCAPI_FILE: asyncapi_document()}
    return {name: json.dumps(doc, indent=2, ensure_ascii=False) + "\n" for name, doc in documents.items()}


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orderflow.contracts.schema",
        description="Write the JSON Schemas of the events and the AsyncAPI document.")
    parser.add_argument("directory", type=Path, help="where to write them (docs/schemas)")
    args = parser.parse_args(argv)
    for path in write(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
