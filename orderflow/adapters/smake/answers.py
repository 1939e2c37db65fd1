"""Smake's answers read as data, and the one translation of a refusal into the error
taxonomy: pure functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from orderflow.adapters.errors import (
    VendorError,
    VendorRejected,
    VendorUnavailable,
)
from orderflow.adapters.http import HttpAnswer, default_error_for, path_safe_ref
from orderflow.adapters.outcomes import CancelledItemSeen, Observation, ShipmentSeen
from orderflow.adapters.smake.request import VENDOR
from orderflow.contracts.events import VendorStatus

# Smake's order states (the "Post" section's table) mapped to the contract's statuses.
# checking, preparing and prepared keep their word as vendor_state, so the engine emits one
# in_progress event per production state.
STATE_TO_STATUS: Mapping[str, VendorStatus] = {
    "draft": VendorStatus.SUBMITTED,
    "checking": VendorStatus.IN_PROGRESS,
    "preparing": VendorStatus.IN_PROGRESS,
    "prepared": VendorStatus.IN_PROGRESS,
    "completed": VendorStatus.COMPLETED,
    "failed": VendorStatus.FAILED,
    "cancelled": VendorStatus.CANCELLED,
}


def order_id_of(order: Mapping[str, Any]) -> str | None:
    # The id goes into `GET /orders/{id}`: one that could not be a path segment is no id.
    return path_safe_ref(order.get("id"))


def id_sort_key(order_id: str) -> tuple[int, int, str]:
    # Smake's ids are integers; compare them as numbers, anything else after them as text.
    return (0, int(order_id), "") if order_id.isdigit() else (1, 0, order_id)


def tracking_numbers(order: Mapping[str, Any]) -> tuple[str, ...]:
    """The shipments' tracking numbers, nulls and repeats left out, in Smake's order."""
    found: list[str] = []
    shipments = order.get("shipments")
    if isinstance(shipments, list):
        for shipment in shipments:
            if isinstance(shipment, dict):
                number = shipment.get("tracking_number")
                if number not in (None, "") and str(number) not in found:
                    found.append(str(number))
    return tuple(found)


def shipments_of(order: Mapping[str, Any]) -> tuple[ShipmentSeen, ...]:
    """The order's shipments: each one's tracking number (None while it has none) and its
    ``shipping_method`` (handle, title) as the carrier."""
    found: list[ShipmentSeen] = []
    shipments = order.get("shipments")
    for shipment in shipments if isinstance(shipments, list) else []:
        if not isinstance(shipment, dict):
            continue
        method = shipment.get("shipping_method")
        method = method if isinstance(method, dict) else {}
        number = shipment.get("tracking_number")
        found.append(ShipmentSeen(
            tracking_number=None if number in (None, "") else str(number),
            carrier_handle=_text_or_none(method.get("handle")),
            carrier_title=_text_or_none(method.get("title")),
            created_at=_text_or_none(shipment.get("created_at"))))
    return tuple(found)


def cancelled_items_of(order: Mapping[str, Any]) -> tuple[CancelledItemSeen, ...]:
    """The order's items its producer cancelled (an item's ``cancelled_at`` is set)."""
    found: list[CancelledItemSeen] = []
    items = order.get("items")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("cancelled_at") in (None, ""):
            continue
        variant = item.get("variant")
        variant_id = variant.get("id") if isinstance(variant, dict) else variant
        quantity = item.get("quantity")
        found.append(CancelledItemSeen(
            vendor_item_ref=str(item.get("id")),
            variant_id=variant_id if is_int(variant_id) else None,
            quantity=quantity if is_int(quantity) else None,
            cancelled_at=_text_or_none(item.get("cancelled_at"))))
    return tuple(found)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 53


def _text_or_none(value: Any) -> str | None:
    return None if value in (None, "") or isinstance(value, dict | list) else str(value)


def observation_from_order(order: Any, operation: str = "get_order") -> Observation:
    """Smake's order resource (``GET /orders/{id}`` or an item of the list) as an Observation.

    Raises VendorUnavailable when the answer cannot be read, including a state word that is
    not in Smake's documented table."""
    if not isinstance(order, dict):
        raise VendorUnavailable(VENDOR, operation, "order answer is not a JSON object")
    state = order.get("state")
    if not isinstance(state, str) or state not in STATE_TO_STATUS:
        raise VendorUnavailable(
            VENDOR, operation, f"order {order.get('id')!r} has an unknown state {state!r}"
        )
    status = STATE_TO_STATUS[state]
    reason = None
    if status is VendorStatus.FAILED:
        message = order.get("failure_message")
        reason = str(message) if message else "Smake reports the order failed (no failure_message)"
    shipments = shipments_of(order)
    return Observation(
        status=status,
        vendor_order_ref=order_id_of(order),
        vendor_state=state,
        reason=reason,
        tracking_numbers=tracking_numbers(order),
        # Shipments' tracking numbers "can appear when the order is completed or later": a
        # completed order is looked at until every shipment it lists has one.
        tracking_expected=status is VendorStatus.COMPLETED and (
            not shipments or any(s.tracking_number is None for s in shipments)),
        shipments=shipments,
        cancelled_items=cancelled_items_of(order),
    )


def exact_matches(listing: Any, external_identifier: str, operation: str = "find_order"
                  ) -> list[tuple[str, dict[str, Any]]]:
    """From one page of ``GET /orders?filter[external_identifier]=...``: (id, order) of every
    order that carries our id exactly, lowest id (the first created) first.

    Smake's filter matches parts of the value: only an order whose ``external_identifier``
    equals ours counts. Raises VendorUnavailable for a page without a data array."""
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise VendorUnavailable(VENDOR, operation, "order list answer has no data array")
    matches: list[tuple[str, dict[str, Any]]] = []
    for order in data:
        if not isinstance(order, dict) or order.get("external_identifier") != external_identifier:
            continue  # a partial match (or one that does not say): not ours
        order_id = order_id_of(order)
        if order_id is not None:
            matches.append((order_id, order))
    matches.sort(key=lambda match: id_sort_key(match[0]))
    return matches


def choose_existing_order(
    listing: Any, external_identifier: str, operation: str = "find_order"
) -> tuple[dict[str, Any] | None, list[str]]:
    """One page's order to adopt (the lowest id) and the ids of every exact match."""
    matches = exact_matches(listing, external_identifier, operation)
    return (matches[0][1] if matches else None), [order_id for order_id, _ in matches]


def has_next_page(listing: Any) -> bool:
    """Whether a list answer says more pages follow: a ``links.next``, on a page that is not
    empty (an empty page ends the walk whatever its links say)."""
    if not isinstance(listing, dict):
        return False
    links, data = listing.get("links"), listing.get("data")
    return (isinstance(links, dict) and bool(links.get("next"))
            and isinstance(data, list) and bool(data))


_ORDER_IN_URL = re.compile(r"/orders/([^/?#]+)/?$")


def created_order_id(answer: HttpAnswer) -> str | None:
    """The new order's id from the create answer: ``X-Identifier``, else a ``Location`` that
    names an order (``.../orders/{id}``), else an ``id`` in a JSON body."""
    identifier = path_safe_ref((answer.headers.get("X-Identifier") or "").strip())
    if identifier is not None:
        return identifier
    location = answer.headers.get("Location")
    if location:
        found = _ORDER_IN_URL.search(urlsplit(location.strip()).path)
        if found and path_safe_ref(found.group(1)) is not None:
            return found.group(1)
    try:
        body = answer.json()
    except ValueError:
        return None
    return order_id_of(body) if isinstance(body, dict) else None


def smake_message(answer: HttpAnswer) -> str:
    """Smake's explanation with its field errors, e.g. ``The given data was invalid.
    (shipping_address.street1: too long; items.0.variant.id: unknown)``."""
    try:
        data = answer.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("error") or "").strip()
        errors = data.get("errors")
        details: list[str] = []
        if isinstance(errors, dict):
            for field, problems in errors.items():
                texts = problems if isinstance(problems, list) else [problems]
                details.append(f"{field}: {'; '.join(str(t) for t in texts)}")
        elif isinstance(errors, list):
            details.extend(str(problem) for problem in errors)
        if details:
            message = f"{message} ({', '.join(details)})" if message else ", ".join(details)
        if message:
            return message[:1000]
    return answer.message()


def smake_error(operation: str, answer: HttpAnswer) -> VendorError:
    """The one reading of a Smake answer that is not a success.

    - 400, 422 and other 4xx: ``VendorRejected`` with Smake's message and field errors.
    - 401/403: ``VendorAuthFailed``; an API key cannot be refreshed, so it is an account
      outage straight away.
    - 404 on the collection (``find_order``, ``create_order``): the base URL is wrong, an
      outage rather than a refusal of this order. 404 on ``get_order``: an order we were
      told about is not readable (yet), transient as well.
    - 429 ``VendorThrottled`` with Retry-After; 5xx and anything else ``VendorUnavailable``.
    """
    if answer.status in (404, 405):
        hint = (
            "check ORDERFLOW_SMAKE__BASE_URL" if operation != "get_order"
            else "the order is not readable at Smake"
        )
        return VendorUnavailable(
            VENDOR, operation, f"HTTP {answer.status} ({hint}): {answer.message()}", answer.status
        )
    if 400 <= answer.status < 500 and answer.status not in (401, 403, 429):
        return VendorRejected(VENDOR, operation, smake_message(answer), answer.status)
    return default_error_for(VENDOR, operation, answer)


def media_id_from(data: Any) -> int:
    """The id of the media object ``POST /media`` answers (at the top, or under ``data`` as
    Smake's other answers hold their resource)."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    media_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(media_id, str) and media_id.isdigit():
        media_id = int(media_id)
    if isinstance(media_id, int) and not isinstance(media_id, bool) and 0 < media_id < 1 << 63:
        return media_id
    raise ValueError("the media answer holds no id")


# ----------------------------------------------------------------------------- adapter
