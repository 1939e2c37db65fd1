"""Our order as Smake's create request, and what is refused before any call: pure functions
of the order and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orderflow.config.settings import SmakeSettings
from orderflow.contracts.events import Address, Order, OrderLine, Vendor

VENDOR = Vendor.SMAKE

# Smake's "Address object": street1 and street2 are "Limited to 35 characters".
STREET_LINE_MAX = 35


def smake_lines(order: Order) -> list[OrderLine]:
    """The lines Smake produces: those whose fulfilment names Smake."""
    return [line for line in order.lines if line.smake is not None]


def refusal_before_create(order: Order, settings: SmakeSettings | None = None) -> str | None:
    """Why Smake cannot take this order, decided without calling Smake; None when it can."""
    if settings is not None:
        for refusal in (_unmapped(order.shipping_method, settings.shipping_method_map,
                                  "shipping_method", "shipping_method_map"),
                        _unmapped(order.payment_method, settings.payment_method_map,
                                  "payment_method", "payment_method_map")):
            if refusal is not None:
                return refusal
    if not smake_lines(order):
        return "the order has no line fulfilled by Smake"
    if order.shipping_address is None:
        return "the order has no shipping_address, which Smake requires"
    addresses = [("shipping_address", order.shipping_address)]
    if order.billing_address is not None:
        addresses.append(("billing_address", order.billing_address))
    for name, address in addresses:
        for field in ("street1", "street2"):
            value = getattr(address, field)
            if value is not None and len(value) > STREET_LINE_MAX:
                return (
                    f"{name}.{field} is {len(value)} characters long; Smake accepts at most "
                    f"{STREET_LINE_MAX} per street line"
                )
    return None


def _unmapped(method: str | None, mapping: Mapping[str, str] | None, field: str,
              setting: str) -> str | None:
    if method is None or mapping is None or method in mapping:
        return None
    return (f"the order's {field} {method!r} has no Smake handle in "
            f"ORDERFLOW_SMAKE__{setting.upper()} (it maps {', '.join(sorted(mapping)) or 'nothing'})")


def method_handle(method: str | None, mapping: Mapping[str, str] | None, default: str) -> str:
    """The Smake handle for the order's method word: mapped where a map is set (call
    ``refusal_before_create`` first), else the word itself; the default when it names none.
    A default is our word too, and is mapped when the map knows it."""
    word = method or default
    if mapping is not None and word in mapping:
        return mapping[word]
    return word


# The page: province_code is "Only for shipments to the United States, Canada, Australia
# and Israel".
PROVINCE_COUNTRIES = frozenset({"US", "CA", "AU", "IL"})


def smake_address(address: Address, customer_email: str) -> dict[str, Any]:
    """Smake's address object: our fields under the same names, nulls left out, a missing
    e-mail taken from the customer (the contact person for the parcel). `country_code` is
    "ISO 3166-1-alpha-2 ... Example: 'US' or 'DE'": written in capitals; `province_code` goes
    only to the countries the page names."""
    body: dict[str, Any] = {}
    for field in (
        "company", "first_name", "last_name", "street1", "street2", "zip", "city",
        "country_code", "province_code", "phone", "email",
    ):
        value = getattr(address, field)
        if value is not None and value != "":
            body[field] = value
    if isinstance(body.get("country_code"), str):
        body["country_code"] = body["country_code"].strip().upper()
    if body.get("country_code") not in PROVINCE_COUNTRIES:
        body.pop("province_code", None)
    body.setdefault("email", customer_email)
    return body


@dataclass(frozen=True, slots=True)
class Artwork:
    """A line's design as Smake prints it: the uploaded file's media id and its size in mm."""

    media_id: int
    width_mm: int
    height_mm: int


def artwork_views(artwork: Artwork, settings: SmakeSettings) -> list[dict[str, Any]]:
    """``variant.views`` carrying the design, as the page's "Create order with designing a
    variant with media ids" shows it: one view (ORDERFLOW_SMAKE__ARTWORK_VIEW) with one logo
    customization printed by ORDERFLOW_SMAKE__PRODUCTION_METHOD from the production file."""
    return [{
        "handle": settings.artwork_view,
        "customizations": [{
            "resource_type": "logo",
            "width": artwork.width_mm,
            "height": artwork.height_mm,
            "resource": {
                "production_method": {"handle": settings.production_method},
                "media": [{"id": artwork.media_id, "collection_name": "production-file"}],
            },
        }],
    }]


def smake_item(line: OrderLine, views: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One order item: the variant by Smake's numeric id when we have it, else by origin sku;
    with the customer's design (`views`) when the line has one."""
    fulfilment = line.smake
    if fulfilment is None:
        raise ValueError(f"line {line.line_id} is not fulfilled by Smake")
    variant: dict[str, Any] = {"type": "basic"}
    if fulfilment.variant_id is not None:
        variant["id"] = fulfilment.variant_id
    else:
        variant["origin"] = {"sku": fulfilment.sku}
    if views:
        variant["views"] = views
    return {"variant": variant, "quantity": line.quantity}


def smake_create_body(order: Order, settings: SmakeSettings,
                      artwork: Mapping[str, Artwork] | None = None) -> dict[str, Any]:
    """The body of ``POST /orders`` for our order, each line of `artwork` (line id -> its
    uploaded design) carrying its design. Call ``refusal_before_create`` first."""
    if order.shipping_address is None:
        raise ValueError("Smake orders need a shipping address")
    email = order.customer.email
    shipping = smake_address(order.shipping_address, email)
    billing = (
        smake_address(order.billing_address, email)
        if order.billing_address is not None
        else dict(shipping)
    )
    payment_method = method_handle(order.payment_method, settings.payment_method_map,
                                   settings.default_payment_method)
    shipping_method = method_handle(order.shipping_method, settings.shipping_method_map,
                                    settings.default_shipping_method)
    body: dict[str, Any] = {
        "customer": {"email": email},
        "items": [smake_item(line, artwork_views(artwork[line.line_id], settings)
                             if artwork and line.line_id in artwork else None)
                  for line in smake_lines(order)],
        "external_identifier": order.order_id,
        "shipping_address": shipping,
        "billing_address": billing,
        "payments": [{"payment_method": {"handle": payment_method}}],
        "shipments": [{"shipping_method": {"handle": shipping_method}}],
    }
    if order.order_number:
        body["number"] = order.order_number
    return body


# ----------------------------------------------------------------------------- answers
