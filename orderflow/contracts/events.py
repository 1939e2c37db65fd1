"""The events orderflow reads and writes, exactly as the public contract defines them.

Input: `order.created` v1. Outputs: `order.vendor_status` v1 and `order.print_files_ready` v1.
Money is `Decimal` and travels as a decimal string, never a float. Unknown fields in the input
are ignored (upstream may add optional fields); outputs are built only from these models.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    Tag,
    WithJsonSchema,
    model_validator,
)

# ASCII digits only: `\d` would also take other scripts' digits, which JSON Schema (ECMA-262)
# patterns refuse, and which would not come back out as the same string.
_MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def _parse_money(value: Any) -> Decimal:
    """Money is a decimal string ("12.00"): a JSON number would already have lost cents."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not re.fullmatch(_MONEY_PATTERN, value):
        raise ValueError('must be a decimal string such as "12.00"')
    return Decimal(value)


def _format_money(value: Decimal) -> str:
    """Plain notation with the amount's own decimals. `str()` writes "0.0000001" as "1E-7" and
    "0.00000000" as "0E-8", which the money pattern refuses: a tracking record holding such an
    order could not be read back, and the job would be lost on restore."""
    return format(value, "f")


Money = Annotated[
    Decimal,
    PlainValidator(_parse_money, json_schema_input_type=str),
    PlainSerializer(_format_money, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _MONEY_PATTERN}),
]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]


def _path_safe(value: str) -> str:
    """An id that goes into a vendor's URL path as one segment (percent-encoded there).
    `.` and `..` would be read as "this" or "the parent" segment (aiohttp resolves them: an
    order id `..` once turned `GET /v2/order/..` into `GET /v2/`), and a control character
    has no business in an id."""
    if value in (".", ".."):
        raise ValueError(f"{value!r} cannot be an id: it goes into vendor URL paths")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("an id must not hold control characters: it goes into vendor URL paths")
    return value


PathSafeId = Annotated[str, AfterValidator(_path_safe)]

# Texts that vendors send us end up in our events. An output event must always be
# publishable: valid UTF-8 (a lone surrogate from a vendor's JSON `\ud800` is not) and
# bounded (a megabyte `failure_message` once made the status write fail forever).
MAX_EVENT_TEXT = 1_000
MAX_EVENT_URL = 4_096


def publishable(value: str, limit: int = MAX_EVENT_TEXT) -> str:
    """`value` as a publishable text: unpaired surrogates replaced, cut to `limit` characters
    (an ellipsis marks the cut)."""
    if len(value) > limit:
        value = value[: limit - 1] + "\u2026"
    return value.encode("utf-8", "replace").decode("utf-8")


EventText = Annotated[str, AfterValidator(publishable)]
EventUrl = Annotated[str, AfterValidator(lambda value: publishable(value, MAX_EVENT_URL))]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Vendor(StrEnum):
    ZAKEKE = "zakeke"
    SMAKE = "smake"
    REEVOO = "reevoo"


class VendorStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self not in (VendorStatus.SUBMITTED, VendorStatus.IN_PROGRESS)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)


# ----------------------------------------------------------------------------- order.created v1


class Customer(_Model):
    email: NonEmptyStr
    customer_id: str | None = None
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None


class Address(_Model):
    company: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    street1: str | None = None
    street2: str | None = None
    zip: str | None = None
    city: str | None = None
    country_code: str | None = None
    province_code: str | None = None
    phone: str | None = None
    email: str | None = None


class ZakekeCustomization(_Model):
    """A Zakeke line: a customizer design (`design_id`) or a configurator composition."""

    provider: Literal["zakeke"]
    design_id: Annotated[PathSafeId, StringConstraints(min_length=1)] | None = None
    modification_id: PathSafeId | None = None
    design_unit_price: Money | None = None
    composition_id: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> ZakekeCustomization:
        if (self.design_id is None) == (self.composition_id is None):
            raise ValueError("a zakeke customization needs exactly one of design_id or composition_id")
        return self


class SmakeFulfilment(_Model):
    """A Smake line: the Smake variant by numeric id, or by Smake's origin sku."""

    provider: Literal["smake"]
    variant_id: int | None = Field(default=None, ge=1)
    sku: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _one_variant_reference(self) -> SmakeFulfilment:
        if self.variant_id is None and self.sku is None:
            raise ValueError("a smake fulfilment needs variant_id or sku")
        return self


class OtherProvider(_Model):
    """A customization or fulfilment by a provider orderflow does not know. Its line is
    ignored for routing (and counted), not a reason to refuse the order: the vendors that
    orderflow does know still get theirs."""

    provider: NonEmptyStr


def _not_provider(known: str) -> Callable[[dict[str, Any]], None]:
    """JSON Schema refinement: the provider is any but `known` (whose object is validated as
    that provider's, in full)."""
    def refine(schema: dict[str, Any]) -> None:
        schema["properties"]["provider"]["not"] = {"const": known}
    return refine


class OtherThanZakeke(OtherProvider):
    """A customization by a provider other than Zakeke."""

    model_config = ConfigDict(json_schema_extra=_not_provider("zakeke"))


class OtherThanSmake(OtherProvider):
    """A fulfilment by a provider other than Smake."""

    model_config = ConfigDict(json_schema_extra=_not_provider("smake"))


def _by_provider(known: str) -> Callable[[Any], str]:
    def tag(value: Any) -> str:
        provider = value.get("provider") if isinstance(value, dict) else getattr(value, "provider", None)
        return known if provider == known else "other_provider"
    return tag


# Read by the provider named: the known one is validated in full (and refused when wrong),
# any other is kept by name only.
Customization = Annotated[
    Annotated[ZakekeCustomization, Tag("zakeke")] | Annotated[OtherThanZakeke, Tag("other_provider")],
    Discriminator(_by_provider("zakeke")),
]
Fulfilment = Annotated[
    Annotated[SmakeFulfilment, Tag("smake")] | Annotated[OtherThanSmake, Tag("other_provider")],
    Discriminator(_by_provider("smake")),
]


class OrderLine(_Model):
    line_id: NonEmptyStr
    sku: NonEmptyStr
    name: str | None = None
    quantity: int = Field(ge=1)
    unit_price: Money
    customization: Customization | None = None
    fulfilment: Fulfilment | None = None
    metadata: dict[str, str] | None = None

    @property
    def zakeke(self) -> ZakekeCustomization | None:
        """The line's Zakeke customization, if it has one."""
        return self.customization if isinstance(self.customization, ZakekeCustomization) else None

    @property
    def smake(self) -> SmakeFulfilment | None:
        """The line's Smake fulfilment, if it has one."""
        return self.fulfilment if isinstance(self.fulfilment, SmakeFulfilment) else None


class Order(_Model):
    order_id: Annotated[PathSafeId, StringConstraints(min_length=1, max_length=64)]
    order_number: str | None = None
    placed_at: AwareDatetime
    currency: CurrencyCode
    total: Money
    session_id: str | None = None
    locale: str | None = None
    sales_channel: str | None = None
    customer: Customer
    shipping_address: Address | None = None
    billing_address: Address | None = None
    shipping_method: str | None = None
    payment_method: str | None = None
    lines: list[OrderLine] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _line_ids_unique(self) -> Order:
        seen: set[str] = set()
        for line in self.lines:
            if line.line_id in seen:
                raise ValueError(f"line_id {line.line_id!r} appears more than once")
            seen.add(line.line_id)
        return self


class OrderCreated(_Model):
    """`order.created` v1, published by upstream checkout."""

    event_id: NonEmptyStr
    event_type: Literal["order.created"]
    schema_version: Literal[1]
    occurred_at: AwareDatetime
    order: Order


class OrderCancelled(_Model):
    """`order.cancelled` v1, on the input topic: the customer or the shop cancelled the whole
    order (contract, "order.cancelled")."""

    event_id: NonEmptyStr
    event_type: Literal["order.cancelled"]
    schema_version: Literal[1]
    occurred_at: AwareDatetime
    order_id: Annotated[PathSafeId, StringConstraints(min_length=1, max_length=64)]
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


# ----------------------------------------------------------------------------- outputs

# Deterministic ids: the same transition of the same pair always gets the same id, so a
# consumer can drop repeats after a restart. The namespace is fixed forever.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c8f8e-2a47-5b7e-9c1d-0b9a4d3e7f21")


def status_event_id(order_id: str, vendor: Vendor, status: VendorStatus, vendor_state: str | None,
                    round: int = 0) -> str:
    """Id of a status transition. Every terminal status of a pair shares one id: a pair has
    exactly one terminal event, so downstream de-duplication can never let two through.
    A pair re-opened by an operator (`orderflow retry`) starts a new round, whose events
    have ids of their own: its new terminal status is not dropped as a repeat."""
    if round:
        first = status_event_id(order_id, vendor, status, vendor_state)
        return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{first}\x1fround\x1f{round}"))
    if status.terminal:
        name = f"{order_id}\x1f{vendor}\x1fterminal"
    elif status is VendorStatus.SUBMITTED:
        name = f"{order_id}\x1f{vendor}\x1fsubmitted"
    else:
        name = f"{order_id}\x1f{vendor}\x1f{status}\x1f{vendor_state or ''}"
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def shipment_tracking_event_id(order_id: str, vendor: Vendor, tracking_numbers: list[str]) -> str:
    """Id of a pair's tracking numbers: the same numbers (in any order) always get the same id."""
    numbers = "\x1e".join(sorted(set(tracking_numbers)))
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{order_id}\x1f{vendor}\x1fshipment_tracking\x1f{numbers}"))


def cancellation_refused_event_id(order_id: str, vendor: Vendor, cancellation_id: str) -> str:
    """Id of a pair's refusal of one cancellation: the same pair and cancellation, one id."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE,
                          f"{order_id}\x1f{vendor}\x1fcancellation_refused\x1f{cancellation_id}"))


def print_files_event_id(order_id: str, line_id: str) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{order_id}\x1fzakeke\x1fprint_files\x1f{line_id}"))


class CancelledItem(_Model):
    """An item of the vendor's order that its producer cancelled (Smake's item
    `cancelled_at`): the order goes on without it."""

    vendor_item_ref: EventText
    variant_id: int | None = None
    quantity: int | None = None
    cancelled_at: EventText | None = None


class OrderVendorStatus(_Model):
    """`order.vendor_status` v1: one event per change of an (order, vendor) pair."""

    event_id: NonEmptyStr
    event_type: Literal["order.vendor_status"] = "order.vendor_status"
    schema_version: Literal[1] = 1
    occurred_at: datetime
    order_id: NonEmptyStr
    vendor: Vendor
    status: VendorStatus
    terminal: bool
    vendor_order_ref: EventText | None = None
    vendor_state: EventText | None = None
    reason: EventText | None = None
    tracking_numbers: list[EventText] = Field(default_factory=list)
    source_event_id: NonEmptyStr
    # Items the vendor's producer cancelled, as known at this change (optional).
    cancelled_items: list[CancelledItem] | None = None

    @model_validator(mode="after")
    def _terminal_matches_status(self) -> OrderVendorStatus:
        if self.terminal != self.status.terminal:
            raise ValueError(f"terminal must be {self.status.terminal} for status {self.status}")
        return self


class PrintFile(_Model):
    format: Annotated[EventText, StringConstraints(min_length=1)]
    url: Annotated[EventUrl, StringConstraints(min_length=1)]


class OrderPrintFilesReady(_Model):
    """`order.print_files_ready` v1: one event per Zakeke design line once its files exist."""

    event_id: NonEmptyStr
    event_type: Literal["order.print_files_ready"] = "order.print_files_ready"
    schema_version: Literal[1] = 1
    occurred_at: datetime
    order_id: NonEmptyStr
    vendor: Literal[Vendor.ZAKEKE] = Vendor.ZAKEKE
    line_id: NonEmptyStr
    design_id: NonEmptyStr
    modification_id: str | None = None
    zip_url: EventUrl | None = None
    files: list[PrintFile] = Field(default_factory=list)
    source_event_id: NonEmptyStr


class Shipment(_Model):
    """One parcel of a pair: its tracking number and the carrier that carries it (Smake's
    `shipping_method` of that shipment), so a consumer can build the carrier's tracking link."""

    tracking_number: EventText
    carrier_handle: EventText | None = None
    carrier_title: EventText | None = None
    created_at: EventText | None = None


class OrderShipmentTracking(_Model):
    """`order.shipment_tracking` v1, on the status topic: a pair's tracking numbers that
    became known only after its terminal `completed` (numbers known at `completed` travel in
    that event). Each new set is one more event, with the full set known so far, until every
    shipment has a number. Tell it apart from `order.vendor_status` by `event_type`."""

    event_id: NonEmptyStr
    event_type: Literal["order.shipment_tracking"] = "order.shipment_tracking"
    schema_version: Literal[1] = 1
    occurred_at: datetime
    order_id: NonEmptyStr
    vendor: Vendor
    vendor_order_ref: EventText | None = None
    tracking_numbers: list[EventText] = Field(min_length=1)
    source_event_id: NonEmptyStr
    # Per parcel with a number: the number, the carrier and when it was shipped (optional).
    shipments: list[Shipment] | None = None


class OrderCancellationRefused(_Model):
    """`order.cancellation_refused` v1, on the status topic: a pair that could not be
    cancelled (the vendor refused, or has no way to withdraw an order it took); the pair
    goes on to its real end."""

    event_id: NonEmptyStr
    event_type: Literal["order.cancellation_refused"] = "order.cancellation_refused"
    schema_version: Literal[1] = 1
    occurred_at: datetime
    order_id: NonEmptyStr
    vendor: Vendor
    vendor_order_ref: EventText | None = None
    reason: EventText
    source_event_id: NonEmptyStr


# Optional fields added to a v1 output event after it was first published: they travel only
# when they say something, so every consumer built before them sees the event as it always
# was (and the JSON Schemas do not require them).
ADDED_OPTIONAL_FIELDS = ("cancelled_items", "shipments")


def wire_json(event: BaseModel) -> bytes:
    """An output event as it is published: every field of its version (null where there is
    nothing), the added optional ones only when set."""
    absent = {name for name in ADDED_OPTIONAL_FIELDS if getattr(event, name, ()) is None}
    return event.model_dump_json(exclude=absent or None).encode()
