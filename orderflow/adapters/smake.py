"""Smake (print production): create the production order, then follow its state.

Smake's pages (``smake-orders-api.txt``) and the notes in the vendor-docs README are the
reference. The module has three floors:

- the request body: ``smake_create_body`` and ``refusal_before_create``, pure functions of
  our ``Order`` and the settings;
- the reading of Smake's answers: ``observation_from_order``, ``choose_existing_order``,
  ``created_order_id`` and the one translation of a refusal, ``smake_error``, all pure;
- ``SmakeAdapter``, which does the I/O: ask first, create only when Smake has nothing for
  the order, poll ``GET /orders/{id}``.

Decisions where the pages leave room (each one has a unit test):

- Street lines over Smake's documented 35 characters are refused before calling, naming the
  field: cutting them would ship to a corrupted address, and a refusal the merchant can read
  is better than whatever Smake does with them.
- Other required address fields (names, zip, city, country, phone) are not checked here:
  Smake is the authority on its own validation, and its 422 (field errors included) becomes
  the ``rejected`` reason. A missing address e-mail is filled with the customer's e-mail,
  since the customer is the contact for the parcel; nothing else is invented.
- The billing address is always sent: the order's own, or a copy of the shipping address
  (what Smake does anyway when it is absent, but explicit in our request).
- An answer with a state word this module does not know is an unreadable answer
  (``VendorUnavailable``, transient): the engine keeps polling with backoff, the word shows in
  the error message and the metrics, and a state that never becomes readable ends as
  ``timed_out`` rather than being guessed into a terminal status.
- Smake does not check ``external_identifier`` for uniqueness, and its filters match parts of
  a value, newest first: for order ``1001`` the first pages can be all ``10010``, ``91001x``
  and so on. The lookup reads every page (at most ``LOOKUP_MAX_PAGES``; past that it is an
  error, and nothing is created) and counts only an exact ``external_identifier``; when
  several orders carry our id the lowest id (the first created) is adopted and the others
  are logged.
- The lookup runs only when a create may already have happened: the engine records the
  intent to create before the create call, and a pair without one was never sent.
- Shipping and payment methods go to Smake as the handles its producer set up: through
  ``ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP`` / ``__PAYMENT_METHOD_MAP`` where set (an order
  naming a method a set map lacks is refused before calling, naming the method and the
  setting), else the order's own words.
- The create answer's ``Location`` is used for the id only when it names an order
  (``.../orders/{id}``): the page's own example points it at a job (``/jobs/1``), whose number
  is not the order id. With no usable id, the order is looked up again by external
  identifier; failing that the error is transient, and the next submit adopts the order
  instead of creating it twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import structlog

from orderflow.adapters.errors import (
    VendorError,
    VendorRejected,
    VendorUnavailable,
    build_or_refuse,
    require_credentials,
)
from orderflow.adapters.http import HttpAnswer, RequestObserver, VendorHttp, default_error_for, path_safe_ref
from orderflow.adapters.outcomes import Observation, PairState
from orderflow.config.settings import SmakeSettings
from orderflow.contracts.events import Address, Order, OrderLine, Vendor, VendorStatus

log = structlog.get_logger(__name__)

VENDOR = Vendor.SMAKE

# Smake's "Address object": street1 and street2 are "Limited to 35 characters".
STREET_LINE_MAX = 35

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

# The lookup asks for Smake's largest page. Partial matches can fill many pages; past this
# many the lookup gives up (an error, retried later) rather than create on a guess.
LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_PAGES = 100

# ----------------------------------------------------------------------------- request body


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


def smake_address(address: Address, customer_email: str) -> dict[str, Any]:
    """Smake's address object: our fields under the same names, nulls left out, a missing
    e-mail taken from the customer (the contact person for the parcel)."""
    body: dict[str, Any] = {}
    for field in (
        "company", "first_name", "last_name", "street1", "street2", "zip", "city",
        "country_code", "province_code", "phone", "email",
    ):
        value = getattr(address, field)
        if value is not None and value != "":
            body[field] = value
    body.setdefault("email", customer_email)
    return body


def smake_item(line: OrderLine) -> dict[str, Any]:
    """One order item: the variant by Smake's numeric id when we have it, else by origin sku."""
    fulfilment = line.smake
    if fulfilment is None:
        raise ValueError(f"line {line.line_id} is not fulfilled by Smake")
    variant: dict[str, Any] = {"type": "basic"}
    if fulfilment.variant_id is not None:
        variant["id"] = fulfilment.variant_id
    else:
        variant["origin"] = {"sku": fulfilment.sku}
    return {"variant": variant, "quantity": line.quantity}


def smake_create_body(order: Order, settings: SmakeSettings) -> dict[str, Any]:
    """The body of ``POST /orders`` for our order. Call ``refusal_before_create`` first."""
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
        "items": [smake_item(line) for line in smake_lines(order)],
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


def _order_id(order: Mapping[str, Any]) -> str | None:
    # The id goes into `GET /orders/{id}`: one that could not be a path segment is no id.
    return path_safe_ref(order.get("id"))


def _id_sort_key(order_id: str) -> tuple[int, int, str]:
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
    return Observation(
        status=status,
        vendor_order_ref=_order_id(order),
        vendor_state=state,
        reason=reason,
        tracking_numbers=tracking_numbers(order),
        # Shipments' tracking numbers "can appear when the order is completed or later".
        tracking_expected=status is VendorStatus.COMPLETED,
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
        order_id = _order_id(order)
        if order_id is not None:
            matches.append((order_id, order))
    matches.sort(key=lambda match: _id_sort_key(match[0]))
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
    return _order_id(body) if isinstance(body, dict) else None


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


def _json(answer: HttpAnswer, operation: str) -> Any:
    try:
        return answer.json()
    except ValueError as exc:
        raise VendorUnavailable(
            VENDOR, operation, "answer is not JSON", answer.status
        ) from exc


# ----------------------------------------------------------------------------- adapter


class SmakeAdapter:
    """Creates Smake production orders (once) and reads their progress.

    ``submit`` creates the order (asking first whether Smake already holds one for
    ``order.order_id`` when a create may already have happened) and returns ``SUBMITTED``
    with ``vendor_state="draft"``, or the state of the order it adopts.
    ``poll`` returns the mapped state of ``GET /orders/{vendor_order_ref}``; ``poll_many``
    reads up to 100 orders in one ``GET /orders?filter[id]=...``.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: SmakeSettings,
        observer: RequestObserver | None = None,
        *,
        http: VendorHttp | None = None,
    ) -> None:
        self._settings = settings
        self._headers: dict[str, str] = {}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._http = http or VendorHttp.for_vendor(VENDOR, settings, observer)

    async def start(self) -> None:
        require_credentials(VENDOR, self._settings)
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def verify_credentials(self) -> str:
        """One harmless authenticated call (`orderflow check`): the first order of the list.
        Raises VendorError when it is refused."""
        operation = "check"
        answer = await self._http.request(operation, "GET", "/orders", params={"per_page": "1"},
                                          headers=self._headers)
        if answer.status != 200:
            raise smake_error(operation, answer)
        return "GET /orders answered 200"

    async def submit(self, order: Order, state: PairState) -> Observation:
        refusal = refusal_before_create(order, self._settings)
        if refusal is not None:
            raise VendorRejected(VENDOR, "create_order", refusal)
        if state.intent_at is not None:
            # A create may have happened (its answer lost, or its sender gone): ask first.
            existing = await self._find(order.order_id)
            if existing is not None:
                return existing
        return await self._create(order, state)

    def polling_view(self, order: Order) -> Order | None:
        return None  # polls read the recorded Smake id only

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        if state.vendor_order_ref is None:
            # Nothing recorded (should not happen after a submit): ask by our id, never create.
            if order is None:
                raise VendorUnavailable(VENDOR, "get_order", "no Smake id recorded for the pair")
            existing = await self._find(order.order_id)
            if existing is None:
                raise VendorUnavailable(
                    VENDOR, "find_order", f"Smake holds no order for {order.order_id!r} yet"
                )
            return existing
        operation = "get_order"
        if path_safe_ref(state.vendor_order_ref) is None:
            raise VendorUnavailable(VENDOR, operation,
                                    f"recorded Smake id {state.vendor_order_ref[:40]!r} is unusable")
        answer = await self._http.request(
            operation, "GET", f"/orders/{quote(state.vendor_order_ref, safe='')}",
            headers=self._headers,
        )
        if answer.status != 200:
            raise smake_error(operation, answer)
        return observation_from_order(_json(answer, operation), operation)

    async def poll_many(self, refs: Sequence[str]) -> dict[str, Observation]:
        """The orders of `refs` (recorded Smake ids) read together: ``GET /orders?filter[id]=
        a,b,...`` with up to 100 ids, every page read, only exact ids counted (Smake's
        filters may match parts of a value). An id absent from the answer is absent from
        the result: the caller reads that one on its own (``poll``), which tells a 404
        from a lag. Raises VendorError when the listing itself fails."""
        operation = "poll_orders"
        wanted = [ref for ref in dict.fromkeys(refs) if path_safe_ref(ref) is not None]
        if not wanted:
            return {}
        if len(wanted) > LOOKUP_PAGE_SIZE:
            raise ValueError(f"at most {LOOKUP_PAGE_SIZE} ids at a time, got {len(wanted)}")
        found: dict[str, Observation] = {}
        asked = set(wanted)
        for page in range(1, LOOKUP_MAX_PAGES + 1):
            answer = await self._http.request(
                operation, "GET", "/orders",
                params={"filter[id]": ",".join(wanted), "per_page": str(LOOKUP_PAGE_SIZE),
                        "page": str(page)},
                headers=self._headers,
            )
            if answer.status != 200:
                raise smake_error(operation, answer)
            listing = _json(answer, operation)
            data = listing.get("data") if isinstance(listing, dict) else None
            if not isinstance(data, list):
                raise VendorUnavailable(VENDOR, operation, "order list answer has no data array")
            for order in data:
                ref = _order_id(order) if isinstance(order, dict) else None
                if ref in asked and ref not in found:
                    try:
                        found[ref] = observation_from_order(order, operation)
                    except VendorError:
                        continue  # unreadable on its own: its own read will say why
            if len(found) == len(asked) or not has_next_page(listing):
                break
        return found

    async def _find(self, order_id: str) -> Observation | None:
        """The order Smake holds for our id, reading every page of the partial-match filter;
        None when no order carries our id exactly."""
        operation = "find_order"
        matches: list[tuple[str, dict[str, Any]]] = []
        for page in range(1, LOOKUP_MAX_PAGES + 1):
            answer = await self._http.request(
                operation, "GET", "/orders",
                params={"filter[external_identifier]": order_id,
                        "per_page": str(LOOKUP_PAGE_SIZE), "page": str(page)},
                headers=self._headers,
            )
            if answer.status != 200:
                raise smake_error(operation, answer)
            listing = _json(answer, operation)
            matches.extend(exact_matches(listing, order_id, operation))
            if not has_next_page(listing):
                break
        else:
            raise VendorUnavailable(
                VENDOR, operation,
                f"the lookup of {order_id!r} still had pages after {LOOKUP_MAX_PAGES} of "
                f"{LOOKUP_PAGE_SIZE}: not creating on a guess")
        if not matches:
            return None
        matches.sort(key=lambda match: _id_sort_key(match[0]))
        ids = [found for found, _ in matches]
        if len(ids) > 1:
            # Smake does not enforce uniqueness; the duplicates need a person's attention.
            log.warning("smake_duplicate_orders", order_id=order_id, adopted=ids[0],
                        smake_order_ids=ids)
        else:
            log.info("smake_order_adopted", order_id=order_id, adopted=ids[0])
        return observation_from_order(matches[0][1], operation)

    async def _create(self, order: Order, state: PairState) -> Observation:
        operation = "create_order"
        body = build_or_refuse(VENDOR, operation, lambda: smake_create_body(order, self._settings))
        await state.intend_to_create()
        answer = await self._http.request(
            operation, "POST", "/orders", json_body=body, headers=self._headers,
        )
        if not 200 <= answer.status < 300:
            raise smake_error(operation, answer)
        order_ref = created_order_id(answer)
        if order_ref is None:
            # Created, but the answer does not say as what: ask by our id. If Smake cannot
            # list it yet, a transient error makes the engine call submit again, which finds
            # and adopts it rather than creating a second one.
            try:
                found = await self._find(order.order_id)
            except VendorError as exc:
                exc.nothing_created = False  # the create did act; only the lookup failed
                raise
            if found is not None:
                return found
            raise VendorUnavailable(
                VENDOR, operation,
                f"HTTP {answer.status} without X-Identifier, and the order is not listed yet",
                answer.status,
            )
        return Observation(VendorStatus.SUBMITTED, vendor_order_ref=order_ref, vendor_state="draft")


__all__ = [
    "STATE_TO_STATUS",
    "STREET_LINE_MAX",
    "SmakeAdapter",
    "choose_existing_order",
    "created_order_id",
    "exact_matches",
    "has_next_page",
    "method_handle",
    "observation_from_order",
    "refusal_before_create",
    "smake_address",
    "smake_create_body",
    "smake_error",
    "smake_item",
    "smake_lines",
    "smake_message",
    "tracking_numbers",
]
