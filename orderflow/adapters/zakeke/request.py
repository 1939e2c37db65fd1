"""Our order as Zakeke's request: which lines Zakeke hears about, who a registration token
speaks for, the `POST /v2/order` body (money as exact JSON numbers) and the paths of the
calls. Pure, no I/O."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from orderflow.contracts.events import Order, OrderLine, Vendor

VENDOR = Vendor.ZAKEKE

# Zakeke's words for an item's print-file production (`printFilesStatus`).
PRINT_FILES_READY = "READY"
PRINT_FILES_IN_PROCESS = "INPROCESS"


def zakeke_lines(order: Order) -> list[OrderLine]:
    """The lines Zakeke must hear about: those customized with Zakeke, nothing else."""
    return [
        line for line in order.lines
        if line.zakeke is not None
    ]


def design_lines(order: Order) -> list[OrderLine]:
    """Customizer lines (a `design_id`): Zakeke renders print files for these."""
    return [line for line in zakeke_lines(order) if design_id_of(line) is not None]


def composition_lines(order: Order) -> list[OrderLine]:
    """Configurator lines (a `composition_id`)."""
    return [
        line for line in zakeke_lines(order)
        if line.zakeke is not None and line.zakeke.composition_id is not None
    ]


def design_id_of(line: OrderLine) -> str | None:
    return line.zakeke.design_id if line.zakeke is not None else None


def modification_id_of(line: OrderLine) -> str | None:
    if line.zakeke is None or not line.zakeke.modification_id:
        return None
    return line.zakeke.modification_id


@dataclass(frozen=True, slots=True)
class TokenCode:
    """Who a registration token speaks for: `customercode` for a registered customer,
    `visitorcode` for a guest. It is both a token-request field and a cache key."""

    kind: Literal["customercode", "visitorcode"]
    value: str


def session_id_for(order: Order) -> str:
    """Zakeke's `sessionID` and a guest's visitor code: the checkout session, else (for an
    order that has none) the order id, which is at least stable across retries."""
    return order.session_id or order.order_id


def registration_code(order: Order) -> TokenCode:
    customer_id = order.customer.customer_id
    if customer_id and customer_id.strip():
        return TokenCode("customercode", customer_id)
    return TokenCode("visitorcode", session_id_for(order))


def zakeke_order_date(order: Order) -> str:
    """`orderDate` in the ISO 8601 form of the Zakeke page's example
    (`2023-11-03T09:13:38.437Z`): UTC, milliseconds, `Z`."""
    placed = order.placed_at.astimezone(UTC)
    return placed.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lines_needing_design_price(order: Order) -> list[OrderLine]:
    """Design lines whose `design_unit_price` upstream did not send: Zakeke must be asked."""
    return [
        line for line in design_lines(order)
        if line.zakeke is not None and line.zakeke.design_unit_price is None
    ]


def build_register_body(
    order: Order, design_unit_prices: Mapping[str, Decimal] | None = None
) -> dict[str, Any]:
    """The `POST /v2/order` body. Money stays `Decimal` (serialize it with
    `dumps_exact_json`). `design_unit_prices` (by line id) fills in the design lines that
    arrived without a `design_unit_price`; a line still lacking one is a programming error."""
    prices = design_unit_prices or {}
    details: list[dict[str, Any]] = []
    compositions: list[dict[str, Any]] = []
    for line in zakeke_lines(order):
        customization = line.zakeke
        assert customization is not None  # zakeke_lines only keeps Zakeke lines
        if customization.design_id is not None:
            design_price = customization.design_unit_price
            if design_price is None:
                design_price = prices.get(line.line_id)
            if design_price is None:
                raise ValueError(f"line {line.line_id!r} has no design unit price")
            if design_price > line.unit_price:
                raise ValueError(
                    f"line {line.line_id!r}: its design_unit_price {design_price} is more than "
                    f"its unit_price {line.unit_price}, which includes the design")
            detail: dict[str, Any] = {
                "orderDetailCode": line.line_id,
                "sku": line.sku,
                "designID": customization.design_id,
                # The page: "Product unit price without the design price". Our unit_price
                # includes the design (contract), so the product is the difference.
                "modelUnitPrice": line.unit_price - design_price,
                "designUnitPrice": design_price,
                "quantity": line.quantity,
            }
            modification_id = modification_id_of(line)
            if modification_id is not None:
                detail["designModificationID"] = modification_id
            details.append(detail)
        elif customization.composition_id is not None:
            compositions.append({
                "orderDetailCode": line.line_id,
                "composition": customization.composition_id,
                "unitPrice": line.unit_price,
                "quantity": line.quantity,
            })
    return {
        "orderCode": order.order_id,
        "orderDate": zakeke_order_date(order),
        "sessionID": session_id_for(order),
        "total": order.total,
        "details": details,
        "compositionDetails": compositions,
    }


def dumps_exact_json(value: Any) -> str:
    """`json.dumps`, except that a `Decimal` becomes a JSON number with exactly its digits
    (`Decimal("57.20")` -> `57.20`), never passing through a float."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return format(value, "f")
    if isinstance(value, Mapping):
        members = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            members.append(f"{json.dumps(key)}:{dumps_exact_json(item)}")
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps_exact_json(item) for item in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number")
    return json.dumps(value)


def order_path(order: Order) -> str:
    """`/v2/order/{orderCode}`; the code is quoted whole (a `/` in it stays inside it)."""
    return f"/v2/order/{quote(order.order_id, safe='')}"


def design_path(line: OrderLine) -> str:
    design_id = design_id_of(line)
    assert design_id is not None
    return f"/v3/designs/{quote(design_id, safe='')}/{line.quantity}"


def print_file_path(line: OrderLine, file_format: str) -> str:
    """`/v1/designs/{designID}/outputfiles/{fileFormat}` (the modification goes in the query)."""
    design_id = design_id_of(line)
    assert design_id is not None
    return f"/v1/designs/{quote(design_id, safe='')}/outputfiles/{quote(file_format, safe='')}"


def design_items_path(line: OrderLine) -> str:
    design_id = design_id_of(line)
    assert design_id is not None
    return f"/v1/designs/{quote(design_id, safe='')}/items"


def print_files_zip_path(line: OrderLine) -> str:
    design_id = design_id_of(line)
    assert design_id is not None
    path = f"/v1/designs/{quote(design_id, safe='')}/outputfiles/zip"
    modification_id = modification_id_of(line)
    if modification_id is not None:
        path += f"/{quote(modification_id, safe='')}"
    return path
