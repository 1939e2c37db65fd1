"""Reevoo's customer order submission, as its page and the README notes describe it.

- `POST /v4/organisations/{TRKREF}/customer_order`: one order. HTTP Basic (API key and
  secret); 403 `Access denied` when the feature is off for the organisation (`access_denied`);
  400 `Invalid TRKREF supplied` for a TRKREF not configured here (they are upper case) or a
  body `trkref` that differs from the path's; 422 `{"message", "errors": [...]}` for a body
  that breaks the attribute table; else 202
  `{"status": 202, "id": "<uuid>", "message": "Customer order accepted"}`.
- `POST /v4/customer_orders`: a JSON array of orders, each naming its `trkref`; 202 when all
  are accepted, 206 when some are, 422 when none, each with the accepted and the rejected.

There is no lookup endpoint and nothing drops a repeated `order_ref`: every accepted order
is a submission, and the ledger counts them per `order_ref`.

Read both ways, as the README says: the customer's `customer_ref` (table) or `cutomer_ref`
(example), and metadata keys of `[a-z0-9_]` (the table says `[a-z0-9]`, its example uses
`field_1`). Not documented, so chosen here: the texts of messages and the batch body's shape.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from orderflow.sandbox.simulators import defaults
from orderflow.sandbox.simulators.base import (
    Clock,
    FaultKnobs,
    MalformedBody,
    VendorSimulator,
    json_response,
    mark_effect_applied,
    read_json,
)

INVALID_TRKREF = "Invalid TRKREF supplied"

_TRKREF = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)*$")
_DATE = re.compile(r"^\d{2}-\d{2}-\d{4}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_LOCALE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PRICE = re.compile(r"^\d+(,\d+)?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_METADATA_KEY = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True, slots=True)
class ReevooSubmission:
    id: str
    trkref: str
    order_ref: str
    body: dict[str, Any]
    received_at: float


class ReevooSimulator(VendorSimulator):
    vendor = "reevoo"

    class Config(VendorSimulator.Config):
        trkrefs: set[str]
        access_denied: bool

    def __init__(
        self,
        *,
        api_key: str = defaults.REEVOO_API_KEY,
        api_secret: str = defaults.REEVOO_API_SECRET,
        trkrefs: Iterable[str] = (defaults.REEVOO_TRKREF,),
        access_denied: bool = False,
        clock: Clock = time.monotonic,
        knobs: FaultKnobs | None = None,
        seed: int | None = None,
    ) -> None:
        """`trkrefs`: the organisations this account may submit for. `access_denied`: answer
        403, as when the feature is not enabled for the organisation."""
        super().__init__(clock=clock, knobs=knobs, seed=seed)
        self.credentials = {api_key: api_secret}
        self.trkrefs = set(trkrefs)
        self.access_denied = access_denied
        self.submissions: list[ReevooSubmission] = []

    def reset_state(self) -> None:
        self.submissions.clear()

    def flows_snapshot(self) -> dict[str, Any]:
        """Each submission accepted: its order_ref, when, and the fulfilment date it gave."""
        return {"submissions": [
            {"order_ref": s.order_ref, "received_at": self.wall_time(s.received_at),
             "fulfilment_date": s.body.get("fulfilment_date")} for s in self.submissions]}

    def submissions_for(self, order_ref: str) -> list[ReevooSubmission]:
        return [s for s in self.submissions if s.order_ref == order_ref]

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(
            "/v4/organisations/{trkref}/customer_order",
            self._post_customer_order,
            name="create_customer_order",
        )
        router.add_post(
            "/v4/customer_orders", self._post_customer_orders, name="create_customer_orders"
        )

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The 401 or 403 this request gets before its body is read, if any."""
        if not self._authenticated(request.headers.get("Authorization", "")):
            return json_response(
                {"message": "Unauthorized"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Reevoo"'},
            )
        if self.access_denied:
            return json_response({"message": "Access denied"}, status=403)
        return None

    def _authenticated(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.credentials.get(key) == secret

    async def _post_customer_order(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        path_trkref = request.match_info["trkref"]
        if path_trkref not in self.trkrefs:
            return json_response({"message": INVALID_TRKREF}, status=400)
        try:
            body = await read_json(request)
        except MalformedBody as exc:
            return _unprocessable(str(exc), [str(exc)])
        if isinstance(body, dict) and isinstance(body.get("trkref"), str):
            if body["trkref"] != path_trkref:
                return json_response({"message": INVALID_TRKREF}, status=400)
        errors = order_errors(body)
        if errors:
            return _unprocessable("The customer order is invalid", errors)
        submission = self._accept(body)
        mark_effect_applied(request)
        return json_response(
            {"status": 202, "id": submission.id, "message": "Customer order accepted"},
            status=202,
        )

    async def _post_customer_orders(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            body = await read_json(request)
        except MalformedBody as exc:
            return _unprocessable(str(exc), [str(exc)])
        if not isinstance(body, list) or not body:
            message = "Expected a non-empty JSON array of customer orders"
            return _unprocessable(message, [message])
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for index, order in enumerate(body):
            order_ref = order.get("order_ref") if isinstance(order, dict) else None
            trkref = order.get("trkref") if isinstance(order, dict) else None
            if isinstance(trkref, str) and trkref not in self.trkrefs:
                errors = [INVALID_TRKREF]
            else:
                errors = order_errors(order)
            if errors:
                rejected.append({"index": index, "order_ref": order_ref, "errors": errors})
            else:
                submission = self._accept(order)
                accepted.append({"index": index, "order_ref": order_ref, "id": submission.id})
        if accepted:
            mark_effect_applied(request)
        if not rejected:
            status, message = 202, "Customer orders accepted"
        elif accepted:
            status, message = 206, "Customer orders partially accepted"
        else:
            status, message = 422, "No customer order accepted"
        answer: dict[str, Any] = {
            "status": status,
            "message": message,
            "summary": {"accepted": len(accepted), "rejected": len(rejected)},
            "accepted": accepted,
            "rejected": rejected,
        }
        if status == 422:
            answer["errors"] = [
                f"order {entry['index']}: {error}"
                for entry in rejected for error in entry["errors"]
            ]
        return json_response(answer, status=status)

    def _accept(self, body: dict[str, Any]) -> ReevooSubmission:
        submission = ReevooSubmission(
            id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            trkref=body["trkref"],
            order_ref=body["order_ref"],
            body=body,
            received_at=self.clock(),
        )
        self.submissions.append(submission)
        self.ledger.record_create(submission.order_ref)
        return submission


def order_errors(body: Any) -> list[str]:
    """What in one customer order breaks the attribute table (empty when nothing)."""
    if not isinstance(body, dict):
        return ["The customer order must be a JSON object"]
    errors: list[str] = []
    trkref = body.get("trkref")
    if not isinstance(trkref, str) or not trkref:
        errors.append("trkref is required")
    elif not _TRKREF.match(trkref):
        errors.append("trkref must be in capital letters, like ABC or ABC-XYZ")
    order_ref = body.get("order_ref")
    if not isinstance(order_ref, str) or not order_ref.strip():
        errors.append("order_ref is required")
    dates = [name for name in ("order_date", "fulfilment_date") if body.get(name) is not None]
    if not dates:
        errors.append("order_date or fulfilment_date is required")
    for name in dates:
        if not _is_date(body[name]):
            errors.append(f"{name} must be a date in the format dd-mm-yyyy")
    _check_pattern(errors, body, "language", _LANGUAGE, "a two-letter ISO 639-1 code, like en")
    _check_pattern(errors, body, "locale", _LOCALE, "a locale like en-GB")
    errors.extend(_customer_errors(body.get("customer")))
    items = body.get("order_items")
    if not isinstance(items, list) or not items:
        errors.append("order_items is required and must not be empty")
    else:
        for index, item in enumerate(items):
            errors.extend(f"order_items[{index}].{e}" for e in _item_errors(item))
    return errors


def _customer_errors(customer: Any) -> list[str]:
    if not isinstance(customer, dict):
        return ["customer is required"]
    errors: list[str] = []
    email = customer.get("email")
    if not isinstance(email, str) or not email:
        errors.append("customer.email is required")
    elif not _EMAIL.match(email):
        errors.append("customer.email must be a valid email address")
    for name in ("customer_ref", "cutomer_ref", "title", "first_name"):
        if customer.get(name) is not None and not isinstance(customer[name], str):
            errors.append(f"customer.{name} must be a string")
    country = customer.get("country")
    if country is not None and not (isinstance(country, str) and _COUNTRY.match(country)):
        errors.append("customer.country must be a two-letter ISO 3166-1 code, like GB")
    return errors


def _item_errors(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["must be an object"]
    errors: list[str] = []
    if not isinstance(item.get("sku"), str) or not item["sku"].strip():
        errors.append("sku is required")
    _check_pattern(errors, item, "price", _PRICE, "digits with an optional comma and decimals")
    _check_pattern(errors, item, "currency", _CURRENCY, "an ISO 4217 code, like GBP")
    metadata = item.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            errors.append("metadata must be an object")
        else:
            errors.extend(
                f"metadata key {key!r} may contain only a-z, 0-9 and _"
                for key in metadata if not _METADATA_KEY.match(key)
            )
    return errors


def _check_pattern(
    errors: list[str], parent: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str
) -> None:
    value = parent.get(name)
    if value is not None and not (isinstance(value, str) and pattern.match(value)):
        errors.append(f"{name} must be {what}")


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        datetime.strptime(value, "%d-%m-%Y")
    except ValueError:
        return False
    return True


def _unprocessable(message: str, errors: list[str]) -> web.Response:
    return json_response({"message": message, "errors": errors}, status=422)
