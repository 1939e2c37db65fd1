"""Smake, as its Orders page (2022-02-01) and the README notes describe it.

Routes sit under `api_prefix` (default `/v2/apps/1`, like `https://api.smake.io/v2/apps/{id}`),
so the service is configured with `{root}/v2/apps/1` and appends `/orders`:

- `POST /orders` (Bearer API key): validated against the attribute tables, 422 with Laravel's
  `{"message", "errors": {field: [messages]}}` when wrong; else 202 with the new id in
  `X-Identifier` and a `Location` (a job URL at the host root, as in the example). Nothing
  checks `external_identifier` for uniqueness: a second create is a second order.
- `GET /orders` with `filter[...]` (id, state, external_identifier, external_reference,
  since_id, created_at_min/max, updated_at_min/max) and `page`/`per_page` (25, at most 100),
  answering `{data, links, meta}`; `GET /orders/{id}`; `PUT /orders/{id}/cancel`.

An order walks draft -> checking -> preparing -> prepared -> completed, `seconds_per_state`
in each, read off the injected clock. A share `failure_rate` (seeded) ends `failed` after
checking, with a `failure_message`; a completed order's shipment gets a tracking number.

Not documented, so chosen here: the shape of `GET /jobs/{id}`, the texts of messages, prices
(a fixed `unit_price`), and which states may still be cancelled (`cancellable_states`).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import Field

from orderflow.sandbox.simulators import defaults
from orderflow.sandbox.simulators.base import (
    CONTROL_PATH,
    Clock,
    FaultKnobs,
    MalformedBody,
    VendorSimulator,
    is_json_int,
    is_json_number,
    json_response,
    mark_effect_applied,
    read_json,
)
from orderflow.sandbox.simulators.smake_webhooks import ORDER_EVENTS, SHIPMENT_PREPARED, WebhookSender

STATES = ("draft", "checking", "failed", "preparing", "prepared", "cancelled", "completed")
TIMED_STATES = ("draft", "checking", "preparing", "prepared")
"""The states an order leaves by itself, after its time in them."""
FINAL_STATES = frozenset({"failed", "cancelled", "completed"})
MEDIA_COLLECTIONS = frozenset({"shipping-label", "packing-slip", "commercial-invoice"})
ALLOWED_FILTERS = (
    "id", "state", "external_identifier", "external_reference", "since_id",
    "created_at_min", "created_at_max", "updated_at_min", "updated_at_max",
)
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
FAILURE_MESSAGE = "An image could not be downloaded."

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")


# `POST /media`: "the raw file as the body (JPEG, PNG or PDF, at most 51.2 MB)".
MEDIA_TYPES = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}
MAX_MEDIA_BYTES = 51_200_000


@dataclass(frozen=True, slots=True)
class SmakeMedia:
    """An uploaded file, as kept here: its digest and size, not its bytes."""

    id: int
    mime_type: str
    size: int
    sha256: str
    uploaded_at: float


@dataclass(slots=True)
class SmakeOrder:
    id: int
    request: dict[str, Any]  # the create body, as accepted
    created_clock: float
    created_wall: datetime
    # (clock reading, state entered), in time order; the current state is the last one due.
    timeline: list[tuple[float, str]]
    variant_ids: list[int]
    id_base: int  # ids of the nested customer, addresses, items and shipment derive from it
    job_id: int

    def state_at(self, now: float) -> tuple[str, float]:
        """The state at clock reading `now`, and when it was entered."""
        current = self.timeline[0]
        for entry in self.timeline:
            if entry[0] <= now:
                current = entry
        return current[1], current[0]

    @property
    def external_identifier(self) -> str | None:
        value = self.request.get("external_identifier")
        return value if isinstance(value, str) else None

    def wall(self, at: float) -> datetime:
        return self.created_wall + timedelta(seconds=at - self.created_clock)


class SmakeSimulator(VendorSimulator):
    vendor = "smake"

    class Config(VendorSimulator.Config):
        seconds_per_state: float | dict[str, float]
        failure_rate: float = Field(ge=0, le=1)
        cancellable_states: set[str]
        payment_methods: set[str] | None
        shipping_methods: set[str] | None
        partial_match_filters: bool
        tracking_delay_s: float = Field(ge=0)
        second_parcel_rate: float = Field(ge=0, le=1)
        unit_price: float = Field(ge=0)
        tax_rate: float = Field(ge=0)
        shipping_price: float = Field(ge=0)
        currency: str

    def __init__(
        self,
        *,
        api_key: str = defaults.SMAKE_API_KEY,
        api_prefix: str = defaults.SMAKE_API_PREFIX,
        seconds_per_state: float | Mapping[str, float] = 1.0,
        failure_rate: float = 0.0,
        cancellable_states: Iterable[str] = ("draft", "checking", "preparing", "prepared"),
        payment_methods: Iterable[str] | None = None,
        shipping_methods: Iterable[str] | None = None,
        partial_match_filters: bool = True,
        tracking_delay_s: float = 0.0,
        second_parcel_rate: float = 0.0,
        unit_price: float = 12.0,
        tax_rate: float = 19.0,
        shipping_price: float = 4.9,
        currency: str = "EUR",
        clock: Clock = time.monotonic,
        knobs: FaultKnobs | None = None,
        seed: int | None = None,
        first_id: int = 1,
    ) -> None:
        """`first_id`: the id of the first order created (Smake's ids are its own).
        `seconds_per_state`: one time for every timed state, or per state name (draft,
        checking, preparing, prepared). `payment_methods` / `shipping_methods`: the handles
        the producer set up, the only ones accepted (None: any).

        `partial_match_filters` (on, as Smake's pages say): `filter[external_identifier]`
        and `filter[external_reference]` match any value that contains the one asked for,
        longer values first, newest first among equals, so an exact match comes last.
        `tracking_delay_s`: a shipment's tracking number appears this long after the order
        completed (Smake's numbers "can appear when the order is completed or later").
        `second_parcel_rate`: the share of orders the producer ships in two parcels; the
        second one's number comes a second after the first's."""
        super().__init__(clock=clock, knobs=knobs, seed=seed, api_prefix=api_prefix)
        self.api_keys = {api_key}
        self.seconds_per_state: float | dict[str, float] = (
            seconds_per_state if isinstance(seconds_per_state, int | float)
            else dict(seconds_per_state)
        )
        self.failure_rate = failure_rate
        self.cancellable_states = set(cancellable_states)
        self.payment_methods = set(payment_methods) if payment_methods is not None else None
        self.shipping_methods = set(shipping_methods) if shipping_methods is not None else None
        self.partial_match_filters = partial_match_filters
        self.tracking_delay_s = tracking_delay_s
        self.second_parcel_rate = second_parcel_rate
        self.unit_price = unit_price
        self.tax_rate = tax_rate
        self.shipping_price = shipping_price
        self.currency = currency
        self.orders: dict[int, SmakeOrder] = {}
        self.media: dict[int, SmakeMedia] = {}
        self._by_external_identifier: dict[str, list[int]] = {}
        self._first_id = first_id
        self._next_id = first_id
        self._next_job_id = 1
        # Off until given a URL (`webhooks.configure`): smake_webhooks.py.
        self.webhooks = WebhookSender(clock, random.Random(seed))

    def reset_state(self) -> None:
        self.webhooks.clear()
        self.orders.clear()
        self.media.clear()
        self._by_external_identifier.clear()
        self._next_id = self._first_id
        self._next_job_id = 1

    # -- for tests

    def orders_with_external_identifier(self, external_identifier: str) -> list[SmakeOrder]:
        return [self.orders[i] for i in self._by_external_identifier.get(external_identifier, ())]

    def state_of(self, order_id: int) -> str:
        return self.orders[order_id].state_at(self.clock())[0]

    def production_files(self, order: SmakeOrder) -> dict[int, list[SmakeMedia]]:
        """Per item index, the media its variant's views print from (collection
        `production-file`)."""
        found: dict[int, list[SmakeMedia]] = {}
        for index, item in enumerate(order.request.get("items") or []):
            for view in (item.get("variant") or {}).get("views") or []:
                for customization in view.get("customizations") or []:
                    for media in (customization.get("resource") or {}).get("media") or []:
                        if media.get("collection_name") == "production-file":
                            found.setdefault(index, []).append(self.media[media["id"]])
        return found

    def flows_snapshot(self) -> dict[str, Any]:
        """Each order: its external identifier, when it was created and reached each state,
        the production files of each item (by index), and the tracking numbers its parcels
        get; and how many media were uploaded."""
        return {
            "media_uploaded": len(self.media),
            "orders": [
                {"external_identifier": order.external_identifier,
                 "created_at": self.wall_time(order.created_clock),
                 "timeline": [[self.wall_time(at), state] for at, state in order.timeline],
                 "production_files": {
                     str(index): [{"id": m.id, "sha256": m.sha256, "size": m.size,
                                   "uploaded_at": self.wall_time(m.uploaded_at)} for m in media]
                     for index, media in self.production_files(order).items()},
                 "tracking_numbers": [
                     _tracking_number(order, index) for index, _ in enumerate(
                         self._parcels(order, order.request.get("shipments") or []))]}
                for order in self.orders.values()],
        }

    def add_routes(self, router: web.UrlDispatcher) -> None:
        prefix = self.api_prefix
        router.add_post(f"{prefix}/orders", self._create_order, name="create_order")
        router.add_post(f"{prefix}/media", self._upload_media, name="upload_media")
        router.add_get(f"{prefix}/orders", self._list_orders, name="list_orders")
        router.add_get(f"{prefix}/orders/{{orderID}}", self._get_order, name="get_order")
        router.add_put(
            f"{prefix}/orders/{{orderID}}/cancel", self._cancel_order, name="cancel_order"
        )
        # The create example's Location points at the host root, not under the app.
        router.add_get("/jobs/{jobID}", self._get_job, name="get_job")
        # The simulator's own control of its webhooks (as `/_sim/faults` is of its faults):
        # POST the receiver and the rates, GET what was delivered.
        for root in (CONTROL_PATH, prefix + CONTROL_PATH):
            router.add_post(f"{root}/webhooks", self._post_webhooks)
            router.add_get(f"{root}/webhooks", self._get_webhooks)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and key.strip() in self.api_keys

    # -- media

    async def _upload_media(self, request: web.Request) -> web.Response:
        """The raw file as the body; read as it arrives (files of tens of MB), kept as its
        digest. Answers the media object with its id."""
        if not self._authorized(request):
            return _unauthenticated()
        mime_type = request.content_type
        if mime_type not in MEDIA_TYPES:
            return _unprocessable({"file": ["The file must be a file of type: jpeg, png, pdf."]})
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > MAX_MEDIA_BYTES:
                return _unprocessable({"file": ["The file may not be greater than 51200 kilobytes."]})
            digest.update(chunk)
        if size == 0:
            return _unprocessable({"file": ["The file field is required."]})
        media = SmakeMedia(self._next_media_id(), mime_type, size, digest.hexdigest(), self.clock())
        self.media[media.id] = media
        mark_effect_applied(request)
        return json_response({
            "id": media.id, "mime_type": mime_type, "size": size,
            "file_name": f"{media.id}.{MEDIA_TYPES[mime_type]}",
            "created_at": _stamp(datetime.now(UTC)),
        }, status=201)

    def _next_media_id(self) -> int:
        return 1000 + len(self.media) + 1

    # -- create

    async def _create_order(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthenticated()
        try:
            body = await read_json(request)
        except MalformedBody as exc:
            return json_response({"message": str(exc)}, status=400)
        errors = self._validate_create(body)
        if errors:
            return _unprocessable(errors)
        order = self._create(body)
        key = order.external_identifier
        if key is not None:
            self.ledger.record_create(key)
            self._by_external_identifier.setdefault(key, []).append(order.id)
        mark_effect_applied(request)
        return web.Response(
            status=202,
            headers={
                "X-Identifier": str(order.id),
                "Location": f"{request.scheme}://{request.host}/jobs/{order.job_id}",
            },
        )

    def _validate_create(self, body: Any) -> dict[str, list[str]]:
        errors = _Errors()
        if not isinstance(body, dict):
            errors.add("body", "The request body must be a JSON object.")
            return errors.by_field
        customer = errors.object(body, "customer", required=True)
        if customer is not None:
            errors.email(customer, "customer.email", required=True)
        items = body.get("items")
        if items is None:
            errors.add("items", "The items field is required.")
        elif not isinstance(items, list):
            errors.add("items", "The items must be an array.")
        elif not items:
            errors.add("items", "The items must have at least 1 items.")
        else:
            for index, item in enumerate(items):
                _validate_item(errors, item, f"items.{index}")
                self._validate_views(errors, item, f"items.{index}.variant.views")
        order_type = errors.object(body, "order_type", required=False)
        if order_type is not None:
            errors.string(order_type, "order_type.handle", required=True)
        for name in ("number", "external_identifier", "external_reference", "cost_centre"):
            errors.string(body, name, required=False)
        for name, required in (
            ("shipping_address", True), ("billing_address", False), ("whitelabel_address", False)
        ):
            address = errors.object(body, name, required=required)
            if address is not None:
                _validate_address(errors, address, name)
        self._validate_payment_and_shipment(errors, body)
        return errors.by_field

    def _validate_views(self, errors: _Errors, item: Any, path: str) -> None:
        """A design on the variant ("Create order with designing a variant with media ids"):
        each view a handle and customizations; each customization a resource type, its size
        and a resource printed by a production method from media uploaded before."""
        variant = item.get("variant") if isinstance(item, dict) else None
        views = variant.get("views") if isinstance(variant, dict) else None
        for v, view in enumerate(views if isinstance(views, list) else []):
            vpath = f"{path}.{v}"
            if not isinstance(view, dict):
                errors.add(vpath, f"The {vpath} must be an object.")
                continue
            errors.string(view, f"{vpath}.handle", required=True)
            customizations = view.get("customizations")
            for c, customization in enumerate(customizations if isinstance(customizations, list)
                                              else []):
                cpath = f"{vpath}.customizations.{c}"
                if not isinstance(customization, dict):
                    errors.add(cpath, f"The {cpath} must be an object.")
                    continue
                errors.string(customization, f"{cpath}.resource_type", required=True)
                for side in ("width", "height"):
                    value: Any = customization.get(side)
                    if not is_json_number(value) or value <= 0:
                        errors.add(f"{cpath}.{side}",
                                   f"The {cpath}.{side} must be a number greater than 0.")
                resource = errors.object(customization, f"{cpath}.resource", required=True)
                if resource is None:
                    continue
                method = errors.object(resource, f"{cpath}.resource.production_method",
                                       required=True)
                if method is not None:
                    errors.string(method, f"{cpath}.resource.production_method.handle",
                                  required=True)
                media = resource.get("media")
                for m, entry in enumerate(media if isinstance(media, list) else []):
                    mpath = f"{cpath}.resource.media.{m}"
                    if not isinstance(entry, dict) or entry.get("id") not in self.media:
                        errors.add(f"{mpath}.id", f"The selected {mpath}.id is invalid.")
                    elif entry.get("collection_name") not in ("production-file", "mockup"):
                        errors.add(f"{mpath}.collection_name",
                                   f"The selected {mpath}.collection_name is invalid.")

    def _validate_payment_and_shipment(self, errors: _Errors, body: dict[str, Any]) -> None:
        for name, method, accepted in (
            ("payments", "payment_method", self.payment_methods),
            ("shipments", "shipping_method", self.shipping_methods),
        ):
            entries = body.get(name)
            if not isinstance(entries, list) or not entries:
                errors.add(name, f"The {name} field is required.")
                continue
            for index, entry in enumerate(entries):
                path = f"{name}.{index}"
                if not isinstance(entry, dict):
                    errors.add(path, f"The {path} must be an object.")
                    continue
                chosen = errors.object(entry, f"{path}.{method}", required=True)
                if chosen is None:
                    continue
                handle = errors.string(chosen, f"{path}.{method}.handle", required=True)
                if handle is not None and accepted is not None and handle not in accepted:
                    field_path = f"{path}.{method}.handle"
                    errors.add(field_path, f"The selected {field_path} is invalid.")
                if name == "shipments":
                    errors.string(entry, f"{path}.tracking_number", required=False)
                    _validate_media(errors, entry, path)

    def _create(self, body: dict[str, Any]) -> SmakeOrder:
        now = self.clock()
        order_id = self._next_id
        self._next_id += 1
        durations = self._durations()
        timeline = [(now, "draft")]
        at = now + durations["draft"]
        timeline.append((at, "checking"))
        at += durations["checking"]
        if self.failure_rate > 0 and self.rng.random() < self.failure_rate:
            timeline.append((at, "failed"))
        else:
            for state in ("preparing", "prepared", "completed"):
                timeline.append((at, state))
                at += durations.get(state, 0.0)
        order = SmakeOrder(
            id=order_id,
            request=body,
            created_clock=now,
            created_wall=datetime.now(UTC).replace(microsecond=0),
            timeline=timeline,
            # "A new product variant is created implicitly for every order item."
            variant_ids=[order_id * 1000 + n for n in range(1, len(body["items"]) + 1)],
            id_base=order_id * 1000,
            job_id=self._next_job_id,
        )
        self._next_job_id += 1
        self.orders[order_id] = order
        for at, state in timeline:
            if state in ORDER_EVENTS:
                self.webhooks.schedule(at, order_id, ORDER_EVENTS[state])
            if state == "completed":
                self.webhooks.schedule(at + self.tracking_delay_s, order_id, SHIPMENT_PREPARED)
        return order

    # -- webhooks

    def build_app(self) -> web.Application:
        app = super().build_app()

        async def start_webhooks(app: web.Application) -> None:
            await self.webhooks.start(self._webhook_resource)

        async def stop_webhooks(app: web.Application) -> None:
            await self.webhooks.stop()

        app.on_startup.append(start_webhooks)
        app.on_cleanup.append(stop_webhooks)
        return app

    async def _post_webhooks(self, request: web.Request) -> web.Response:
        body = await request.json()
        allowed = {"url", "token", "repeat_rate", "forged_rate", "max_delay_s", "retry_s",
                   "max_attempts"}
        if not isinstance(body, dict) or set(body) - allowed:
            return json_response({"message": f"POST a JSON object of {sorted(allowed)}"}, status=400)
        self.webhooks.configure(**body)
        return await self._get_webhooks(request)

    async def _get_webhooks(self, request: web.Request) -> web.Response:
        stats = self.webhooks.stats
        return json_response({"url": self.webhooks.url, **{
            name: getattr(stats, name) for name in (
                "scheduled", "deliveries", "acknowledged", "refused", "given_up", "repeats",
                "forged", "forged_acknowledged", "by_event")}})

    def _webhook_resource(self, order_id: int, event: str, now: float) -> dict[str, Any] | None:
        """The resource a due event carries, or None when the event no longer happens (the
        order was cancelled before reaching that state)."""
        order = self.orders.get(order_id)
        if order is None:
            return None
        states = {state for at, state in order.timeline if at <= now}
        if event == SHIPMENT_PREPARED:
            if "completed" not in states:
                return None
            body = self._order_json(order, now)
            return {**body["shipments"][0], "order": order.id} if body["shipments"] else None
        wanted = next(state for state, name in ORDER_EVENTS.items() if name == event)
        return self._order_json(order, now) if wanted in states else None

    def _durations(self) -> dict[str, float]:
        if isinstance(self.seconds_per_state, dict):
            return {state: float(self.seconds_per_state.get(state, 1.0)) for state in TIMED_STATES}
        return dict.fromkeys(TIMED_STATES, float(self.seconds_per_state))

    # -- read

    async def _get_order(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthenticated()
        order = self._order_from_path(request)
        if order is None:
            return _not_found(request.match_info["orderID"])
        return json_response(self._order_json(order, self.clock()))

    async def _list_orders(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthenticated()
        query = request.query
        filters = {
            key[len("filter["):-1]: value
            for key, value in query.items() if key.startswith("filter[") and key.endswith("]")
        }
        unknown = [name for name in filters if name not in ALLOWED_FILTERS]
        if unknown:
            return json_response({
                "message": f"Requested filter(s) `{', '.join(unknown)}` are not allowed. "
                           f"Allowed filter(s) are `{', '.join(ALLOWED_FILTERS)}`."
            }, status=400)
        try:
            per_page = int(query.get("per_page", str(DEFAULT_PER_PAGE)))
        except ValueError:
            per_page = -1
        if not 1 <= per_page <= MAX_PER_PAGE:
            return _unprocessable({"per_page": [
                f"The per page must be an integer between 1 and {MAX_PER_PAGE}."
            ]})
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1  # as Laravel does with a page it cannot read
        now = self.clock()
        try:
            matching = self._filtered(filters, now)
        except ValueError as exc:
            return json_response({"message": str(exc)}, status=400)
        start = (page - 1) * per_page
        shown = matching[start:start + per_page]
        base = request.url.with_query([(k, v) for k, v in query.items() if k != "page"])
        return json_response({
            "data": [self._order_json(order, now) for order in shown],
            "links": {
                "first": str(base.extend_query(page=1)),
                "last": None,
                "prev": str(base.extend_query(page=page - 1)) if page > 1 else None,
                "next": (
                    str(base.extend_query(page=page + 1))
                    if start + per_page < len(matching) else None
                ),
            },
            "meta": {
                "current_page": page,
                "from": start + 1 if shown else None,
                "path": str(request.url.with_query(None)),
                "per_page": per_page,
                "to": start + len(shown) if shown else None,
            },
        })

    def _filtered(self, filters: Mapping[str, str], now: float) -> list[SmakeOrder]:
        """Orders matching every filter, by ascending id. Raises ValueError on a bad value."""
        partial: str | None = None
        if "external_identifier" in filters and self.partial_match_filters:
            partial = filters["external_identifier"]
            candidates = [o for o in self.orders.values()
                          if partial in (o.external_identifier or "")]
        elif "external_identifier" in filters:
            ids = self._by_external_identifier.get(filters["external_identifier"], [])
            candidates = [self.orders[i] for i in ids]
        else:
            candidates = list(self.orders.values())
        if "id" in filters:
            wanted = {_int_filter("id", part) for part in filters["id"].split(",") if part}
            candidates = [o for o in candidates if o.id in wanted]
        if "since_id" in filters:
            since = _int_filter("since_id", filters["since_id"])
            candidates = [o for o in candidates if o.id > since]
        if "state" in filters:
            states = {part.strip() for part in filters["state"].split(",")}
            candidates = [o for o in candidates if o.state_at(now)[0] in states]
        if "external_reference" in filters:
            reference = filters["external_reference"]
            candidates = [o for o in candidates if (
                reference in str(o.request.get("external_reference") or "")
                if self.partial_match_filters else o.request.get("external_reference") == reference)]
        for name in ("created_at_min", "created_at_max", "updated_at_min", "updated_at_max"):
            if name in filters:
                bound = _date_filter(name, filters[name])
                candidates = [o for o in candidates if _within(o, name, bound, now)]
        if partial is not None:
            # Longer (looser) matches first, newest first among equals: ours comes last.
            return sorted(candidates, key=lambda o: (-len(o.external_identifier or ""), -o.id))
        return sorted(candidates, key=lambda o: o.id)

    # -- cancel

    async def _cancel_order(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthenticated()
        order = self._order_from_path(request)
        if order is None:
            return _not_found(request.match_info["orderID"])
        now = self.clock()
        state, _ = order.state_at(now)
        if state not in self.cancellable_states or state in FINAL_STATES:
            return _unprocessable(
                {"state": [f"The order is {state} and can no longer be cancelled."]},
                message=f"Order {order.id} can no longer be cancelled.",
            )
        order.timeline = [entry for entry in order.timeline if entry[0] <= now]
        order.timeline.append((now, "cancelled"))
        self.webhooks.schedule(now, order.id, ORDER_EVENTS["cancelled"])
        return json_response(self._order_json(order, now))

    async def _get_job(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthenticated()
        raw_id = request.match_info["jobID"]
        for order in self.orders.values():
            if str(order.job_id) == raw_id:
                return json_response({"id": order.job_id, "status": "finished", "order": order.id})
        return json_response({"message": "Not Found"}, status=404)

    def _order_from_path(self, request: web.Request) -> SmakeOrder | None:
        raw_id = request.match_info["orderID"]
        return self.orders.get(int(raw_id)) if raw_id.isdigit() else None

    # -- the order as the documents show it

    def _order_json(self, order: SmakeOrder, now: float) -> dict[str, Any]:
        body = order.request
        state, entered = order.state_at(now)
        created = _stamp(order.created_wall)
        updated = _stamp(order.wall(entered))
        cancelled = updated if state == "cancelled" else None
        items = [
            self._item_json(order, index, item, created, cancelled)
            for index, item in enumerate(body["items"])
        ]
        items_price = round(sum(item["total"] for item in items), 2)
        subtotal = round(sum(item["price"] * item["quantity"] for item in items), 2)
        total_tax = round(sum(item["total_tax"] for item in items), 2)
        shipping = body["shipping_address"]
        return {
            "id": order.id,
            "order_type": 1,
            "is_test": False,
            "external_identifier": body.get("external_identifier"),
            "external_reference": body.get("external_reference"),
            "cost_centre": body.get("cost_centre"),
            "state": state,
            "failure_message": FAILURE_MESSAGE if state == "failed" else None,
            "customer_locale": "en",
            "currency": self.currency,
            "total": round(items_price + self.shipping_price, 2),
            "subtotal": subtotal,
            "total_tax": total_tax,
            "total_items_price": items_price,
            "shipping_total": self.shipping_price,
            "discount_total": 0,
            "created_at": created,
            "updated_at": updated,
            "ordered_at": created,
            "cancelled_at": cancelled,
            "items": items,
            "disposition_order": None,
            "customer": {
                "id": order.id_base + 101,
                "is_test": False,
                "email": body["customer"]["email"],
                "created_at": created,
                "updated_at": created,
            },
            "shipping_address": _address_json(shipping, order.id_base + 201, created),
            "billing_address": _address_json(
                body.get("billing_address") or shipping, order.id_base + 202, created
            ),
            "whitelabel_address": (
                _address_json(body["whitelabel_address"], order.id_base + 203, created)
                if body.get("whitelabel_address") else None
            ),
            "payments": [
                {"payment_method": {
                    "id": 1,
                    "name": payment["payment_method"]["handle"].title(),
                    "handle": payment["payment_method"]["handle"],
                    "created_at": created,
                    "updated_at": created,
                }}
                for payment in body["payments"]
            ],
            "shipments": [
                self._shipment_json(order, index, shipment, state, created, updated)
                for index, shipment in enumerate(self._parcels(order, body["shipments"]))
            ],
        }

    def _item_json(
        self,
        order: SmakeOrder,
        index: int,
        item: Mapping[str, Any],
        created: str,
        cancelled: str | None,
    ) -> dict[str, Any]:
        quantity = item["quantity"]
        net = self.unit_price * quantity
        tax = round(net * self.tax_rate / 100, 2)
        return {
            "id": order.id_base + index + 1,
            "is_test": False,
            "quantity": quantity,
            "total": round(net + tax, 2),
            "price": self.unit_price,
            "total_tax": tax,
            "tax_rate": self.tax_rate,
            "created_at": created,
            "updated_at": cancelled or created,
            "cancelled_at": cancelled,
            "variant": order.variant_ids[index],
            "id_tags": [order.id_base + index + 1],
        }

    def _parcels(self, order: SmakeOrder, shipments: list[Any]) -> list[Any]:
        """The order's shipments: as created, and for some orders a second parcel (a split
        the producer made; its method is the first one's)."""
        if (not shipments or self.second_parcel_rate <= 0
                or random.Random(f"parcels:{order.id}").random() >= self.second_parcel_rate):
            return shipments
        return [*shipments, {"shipping_method": dict(shipments[0]["shipping_method"])}]

    def _shipment_json(
        self,
        order: SmakeOrder,
        index: int,
        shipment: Mapping[str, Any],
        state: str,
        created: str,
        updated: str,
    ) -> dict[str, Any]:
        tracking = shipment.get("tracking_number")
        if tracking is None and state == "completed":
            completed_at = order.state_at(self.clock())[1]
            # A later parcel's number comes a second after the one before it.
            if self.clock() - completed_at >= self.tracking_delay_s + index * 1.0:
                tracking = _tracking_number(order, index)
        handle = shipment["shipping_method"]["handle"]
        return {
            "id": order.id_base + 301 + index,
            "is_test": False,
            "shipping_method": {
                "is_test": False,
                "order_id": order.id,
                "handle": handle,
                "title": handle.replace("-", " ").title(),
                "price": self.shipping_price,
            },
            "tracking_number": tracking,
            "media": shipment.get("media") or [],
            "order": order.id,
            "created_at": created,
            "updated_at": updated,
        }


def _tracking_number(order: SmakeOrder, index: int) -> str:
    """The number the producer gives the order's `index`-th parcel once it is on its way."""
    return f"SMK{order.id:08d}{index:02d}"


# ----------------------------------------------------------------------------- validation


class _Errors:
    """Laravel-style validation errors: field path -> messages."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_field.setdefault(path, []).append(message)

    def object(
        self, parent: Mapping[str, Any], path: str, *, required: bool
    ) -> dict[str, Any] | None:
        value = parent.get(path.rsplit(".", 1)[-1])
        if value is None:
            if required:
                self.add(path, f"The {path} field is required.")
            return None
        if not isinstance(value, dict):
            self.add(path, f"The {path} must be an object.")
            return None
        return value

    def string(
        self, parent: Mapping[str, Any], path: str, *, required: bool, max_length: int | None = None
    ) -> str | None:
        value = parent.get(path.rsplit(".", 1)[-1])
        if value is None or value == "":
            if required:
                self.add(path, f"The {path} field is required.")
            return None
        if not isinstance(value, str):
            self.add(path, f"The {path} must be a string.")
            return None
        if max_length is not None and len(value) > max_length:
            self.add(path, f"The {path} may not be greater than {max_length} characters.")
        return value

    def email(self, parent: Mapping[str, Any], path: str, *, required: bool) -> None:
        value = self.string(parent, path, required=required)
        if value is not None and not _EMAIL.match(value):
            self.add(path, f"The {path} must be a valid email address.")


def _validate_item(errors: _Errors, item: Any, path: str) -> None:
    if not isinstance(item, dict):
        errors.add(path, f"The {path} must be an object.")
        return
    quantity = item.get("quantity")
    if quantity is None:
        errors.add(f"{path}.quantity", f"The {path}.quantity field is required.")
    elif not is_json_int(quantity):
        errors.add(f"{path}.quantity", f"The {path}.quantity must be an integer.")
    elif quantity < 1:
        errors.add(f"{path}.quantity", f"The {path}.quantity must be at least 1.")
    variant = errors.object(item, f"{path}.variant", required=True)
    if variant is None:
        return
    vpath = f"{path}.variant"
    variant_type = errors.string(variant, f"{vpath}.type", required=True)
    if variant_type is not None and variant_type != "basic":
        errors.add(f"{vpath}.type", f"The selected {vpath}.type is invalid.")
    origin = errors.object(variant, f"{vpath}.origin", required=False)
    origin_sku = origin_id = None
    if origin is not None:
        origin_sku = errors.string(origin, f"{vpath}.origin.sku", required=False)
        origin_id = errors.string(origin, f"{vpath}.origin.external_identifier", required=False)
    variant_id = variant.get("id")
    if variant_id is not None and not is_json_int(variant_id):
        errors.add(f"{vpath}.id", f"The {vpath}.id must be an integer.")
    elif variant_id is None and origin_sku is None and origin_id is None:
        errors.add(
            f"{vpath}.id",
            f"The {vpath}.id field is required when none of {vpath}.origin.sku / "
            f"{vpath}.origin.external_identifier are present.",
        )
    adopt = errors.object(variant, f"{vpath}.adopt_design_from_variant", required=False)
    if adopt is not None and not is_json_int(adopt.get("id")):
        errors.add(
            f"{vpath}.adopt_design_from_variant.id",
            f"The {vpath}.adopt_design_from_variant.id must be an integer.",
        )
    if variant.get("views") is not None and not isinstance(variant["views"], list):
        errors.add(f"{vpath}.views", f"The {vpath}.views must be an array.")


def _validate_address(errors: _Errors, address: dict[str, Any], path: str) -> None:
    for name in ("first_name", "last_name", "zip", "city", "phone"):
        errors.string(address, f"{path}.{name}", required=True)
    errors.string(address, f"{path}.street1", required=True, max_length=35)
    errors.string(address, f"{path}.street2", required=False, max_length=35)
    for name in ("company", "vat_in"):
        errors.string(address, f"{path}.{name}", required=False)
    errors.email(address, f"{path}.email", required=True)
    country = errors.string(address, f"{path}.country_code", required=True)
    if country is not None and not _COUNTRY_CODE.match(country):
        errors.add(
            f"{path}.country_code",
            f"The {path}.country_code must be an ISO 3166-1 alpha-2 code.",
        )
    province = errors.string(address, f"{path}.province_code", required=False)
    if province is not None and not 1 <= len(province) <= 3:
        errors.add(
            f"{path}.province_code", f"The {path}.province_code must be 1 to 3 characters."
        )


def _validate_media(errors: _Errors, shipment: Mapping[str, Any], path: str) -> None:
    media = shipment.get("media")
    if media is None:
        return
    if not isinstance(media, list):
        errors.add(f"{path}.media", f"The {path}.media must be an array.")
        return
    for index, entry in enumerate(media):
        mpath = f"{path}.media.{index}"
        if not isinstance(entry, dict):
            errors.add(mpath, f"The {mpath} must be an object.")
            continue
        collection = errors.string(entry, f"{mpath}.collection_name", required=True)
        if collection is not None and collection not in MEDIA_COLLECTIONS:
            errors.add(
                f"{mpath}.collection_name", f"The selected {mpath}.collection_name is invalid."
            )
        if entry.get("url") is None and entry.get("id") is None:
            errors.add(
                f"{mpath}.url", f"The {mpath}.url field is required when none of id are present."
            )


# ----------------------------------------------------------------------------- helpers


def _int_filter(name: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"filter[{name}] must be an integer, got {raw!r}") from None


def _date_filter(name: str, raw: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"filter[{name}] must be a date, got {raw!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _within(order: SmakeOrder, name: str, bound: datetime, now: float) -> bool:
    if name.startswith("created"):
        moment = order.created_wall
    else:
        moment = order.wall(order.state_at(now)[1])
    return moment >= bound if name.endswith("_min") else moment <= bound


def _stamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _address_json(address: Mapping[str, Any], address_id: int, created: str) -> dict[str, Any]:
    return {
        "id": address_id,
        "is_test": False,
        "company": address.get("company"),
        "first_name": address["first_name"],
        "last_name": address["last_name"],
        "city": address["city"],
        "street1": address["street1"],
        "street2": address.get("street2"),
        "zip": address["zip"],
        "phone": address["phone"],
        "email": address["email"],
        "province_code": address.get("province_code"),
        "country_code": address["country_code"],
        "vat_in": address.get("vat_in"),
        "created_at": created,
        "updated_at": created,
    }


def _unprocessable(errors: Mapping[str, list[str]], message: str | None = None) -> web.Response:
    """Laravel's 422: the first message, and how many more there are."""
    if message is None:
        first = next(iter(errors.values()))[0]
        more = sum(len(messages) for messages in errors.values()) - 1
        message = first if not more else f"{first} (and {more} more error{'s' if more > 1 else ''})"
    return json_response({"message": message, "errors": dict(errors)}, status=422)


def _unauthenticated() -> web.Response:
    return json_response({"message": "Unauthenticated."}, status=401)


def _not_found(raw_id: str) -> web.Response:
    return json_response({"message": f"No order with id {raw_id}."}, status=404)
