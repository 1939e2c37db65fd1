"""Zakeke, as its Orders API (v2 and the legacy page) and Designs API pages describe it.

- `POST /token`: OAuth client credentials over HTTP Basic, form-encoded
  `grant_type=client_credentials&access_type=S2S`, optionally `customercode` or `visitorcode`
  (the legacy page says `usercode`: read as a visitor code) bound to the token.
- `POST /v2/order` registers an order and answers a status code with an empty body. Its token
  must carry a customer or visitor code (else 400, legacy page). A second registration of the
  same code is a second order: nothing in the documents says it is refused.
- `GET /v2/order/{orderCode}`, `GET /v2/orders/{id}`, `GET /v2/orders?pageSize&pageNumber`.
- Print-ready files are made in the background: each line is `INPROCESS` (and the design's
  output-file endpoints answer 404) until `print_files_delay_s` after registration, then
  `READY` with a zip and one file per format in `print_file_formats`.
- `GET /v3/designs/{designID}/{quantity}`, `GET /v1/designs/{designID}/outputfiles/zip[/{mod}]`,
  `GET /v1/designs/{designID}/outputfiles/{fileFormat}[?modificationID=]`.

Not documented, so chosen here: composition lines (configured products) go through the same
INPROCESS/READY cycle, with files named after the composition and a `composition` key on the
item; the files themselves are served, as placeholders, under `/files/print/`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import Field, field_validator

from orderflow.sandbox.simulators import defaults
from orderflow.sandbox.simulators.base import (
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

FILE_FORMATS = ("PNG", "JPG", "PDF", "SVG", "DXF")
"""The formats the designs page lists for `outputfiles/{fileFormat}`."""

NO_CODE_IN_TOKEN = "Visitor and customer code were not sent into authentication OAuth Token"
NEEDS_MODIFICATION_ID = "Design Files have ModificationID: need to specify ModificationID."


@dataclass(slots=True)
class ZakekeToken:
    expires_at: float
    customer_code: str | None
    visitor_code: str | None


@dataclass(slots=True)
class ZakekeOrderLine:
    detail_code: str | None
    sku: str | None
    design_id: str | None
    modification_id: str | None
    composition: str | None
    quantity: int
    unit_price: float
    files_ready_at: float

    @property
    def file_stem(self) -> str:
        """What the line's print files are named after."""
        if self.design_id is None:
            return str(self.composition)
        if self.modification_id:
            return f"{self.design_id}-{self.modification_id}"
        return self.design_id


@dataclass(slots=True)
class ZakekeOrder:
    id: int
    code: str
    order_date: str
    session_id: str
    total: float
    customer_code: str | None
    visitor_code: str | None
    lines: list[ZakekeOrderLine] = field(default_factory=list)
    registered_at: float = 0.0


class ZakekeSimulator(VendorSimulator):
    vendor = "zakeke"

    class Config(VendorSimulator.Config):
        token_expires_in_s: int = Field(ge=1)
        token_field: Literal["access_token", "access-token"]
        known_designs: set[str] | None
        print_files_delay_s: float = Field(ge=0)
        print_files_jitter_s: float = Field(ge=0)
        print_file_formats: tuple[str, ...]
        files_base: str | None
        design_unit_price: float = Field(ge=0)
        currency: str
        read_lag_s: float = Field(ge=0)
        composition_files: bool
        echo_line_codes: bool
        print_file_bytes: tuple[int, int]

        @field_validator("print_file_formats")
        @classmethod
        def _upper(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(f.upper() for f in formats)

    def __init__(
        self,
        *,
        client_id: str = defaults.ZAKEKE_CLIENT_ID,
        client_secret: str = defaults.ZAKEKE_CLIENT_SECRET,
        token_expires_in_s: int = 3600,
        token_field: Literal["access_token", "access-token"] = "access_token",
        known_designs: Iterable[str] | None = None,
        print_files_delay_s: float = 1.0,
        print_files_jitter_s: float = 0.0,
        print_file_formats: Iterable[str] = ("PDF", "PNG"),
        files_base: str | None = None,
        design_unit_price: float = 5.0,
        currency: str = "EUR",
        read_lag_s: float = 0.0,
        composition_files: bool = True,
        echo_line_codes: bool = True,
        print_file_bytes: tuple[int, int] = (150_000, 1_500_000),
        clock: Clock = time.monotonic,
        knobs: FaultKnobs | None = None,
        seed: int | None = None,
    ) -> None:
        """`known_designs`: the design ids registration accepts (None: any). `files_base`:
        where print-file URLs point (None: this server's `/files`). `token_field`: the key
        the token answer uses (one Zakeke page spells it `access-token`).

        Knobs for the Zakeke the vendor notes describe, harder than the pages alone:
        `read_lag_s`, reading an order by code answers 404 for this long after it was
        registered; `composition_files=False`, configurator items stay INPROCESS for ever
        (nothing says they ever get print files); `echo_line_codes=False`, items carry no
        `code` (our line id), only the design and, for Names and Numbers, the
        `designModificationID`. `print_file_bytes`: the smallest and largest size of a
        print-ready file (each file's size, and its bytes, follow from its name; real ones are
        hundreds of KB to tens of MB)."""
        super().__init__(clock=clock, knobs=knobs, seed=seed)
        self.credentials = {client_id: client_secret}
        self.token_expires_in_s = token_expires_in_s
        self.token_field: Literal["access_token", "access-token"] = token_field
        self.known_designs = set(known_designs) if known_designs is not None else None
        self.print_files_delay_s = print_files_delay_s
        self.print_files_jitter_s = print_files_jitter_s
        self.print_file_formats = tuple(f.upper() for f in print_file_formats)
        self.files_base = files_base.rstrip("/") if files_base else None
        self.design_unit_price = design_unit_price
        self.currency = currency
        self.read_lag_s = read_lag_s
        self.composition_files = composition_files
        self.echo_line_codes = echo_line_codes
        self.print_file_bytes = print_file_bytes
        self.tokens: dict[str, ZakekeToken] = {}
        self.orders: dict[int, ZakekeOrder] = {}
        self._next_order_id = 1

    def reset_state(self) -> None:
        self.tokens.clear()
        self.orders.clear()
        self._next_order_id = 1

    # -- for tests

    def orders_with_code(self, order_code: str) -> list[ZakekeOrder]:
        return [order for order in self.orders.values() if order.code == order_code]

    def print_file_digest(self, file_name: str) -> tuple[int, str]:
        """Size and SHA-256 of the print-ready file served as `file_name` (`{stem}.{pdf|png}`)."""
        digest, size = hashlib.sha256(), 0
        for chunk in print_file_chunks(file_name, self.print_file_bytes):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()

    def flows_snapshot(self) -> dict[str, Any]:
        """Each registered design line: its order code, when its print files came to exist
        and the name they are served under (`{file_stem}.{format}`), and the file sizes."""
        return {
            "print_file_bytes": list(self.print_file_bytes),
            "lines": [
                {"order_code": order.code, "design_id": line.design_id,
                 "modification_id": line.modification_id, "file_stem": line.file_stem,
                 "files_ready_at": self.wall_time(line.files_ready_at)}
                for order in self.orders.values() for line in order.lines
                if line.design_id is not None],
        }

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/token", self._post_token, name="token")
        router.add_post("/v2/order", self._post_order, name="create_order")
        router.add_get("/v2/order/{orderCode}", self._get_order_by_code, name="get_order_by_code")
        router.add_get("/v2/orders/{orderID}", self._get_order_by_id, name="get_order_by_id")
        router.add_get("/v2/orders", self._list_orders, name="list_orders")
        router.add_get("/v3/designs/{designID}", self._get_design, name="get_design")
        router.add_get("/v3/designs/{designID}/{quantity}", self._get_design, name="get_design_qty")
        router.add_get(
            "/v1/designs/{designID}/outputfiles/zip", self._get_output_zip, name="output_zip"
        )
        router.add_get(
            "/v1/designs/{designID}/outputfiles/zip/{modificationID}",
            self._get_output_zip,
            name="output_zip_modification",
        )
        router.add_get(
            "/v1/designs/{designID}/outputfiles/{fileFormat}",
            self._get_output_file,
            name="output_file",
        )
        router.add_get("/files/print/{fileName}", self._get_print_file, name="print_file")
        router.add_get("/v1/designs/{designID}/items", self._get_design_items, name="design_items")

    # -- auth

    async def _post_token(self, request: web.Request) -> web.Response:
        if not self._client_authenticated(request.headers.get("Authorization", "")):
            return _oauth_error("invalid_client", 401)
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", 400)
        access_type = form.get("access_type")
        if not isinstance(access_type, str) or access_type.upper() != "S2S":
            return _oauth_error("invalid_request", 400, "access_type must be S2S")
        customer_code = _form_text(form.get("customercode"))
        visitor_code = _form_text(form.get("visitorcode")) or _form_text(form.get("usercode"))
        token = f"zk-{self.rng.getrandbits(128):032x}"
        self.tokens[token] = ZakekeToken(
            expires_at=self.clock() + self.token_expires_in_s,
            customer_code=customer_code,
            visitor_code=visitor_code,
        )
        return json_response({
            self.token_field: token,
            "token_type": "Bearer",
            "expires_in": self.token_expires_in_s,
        })

    def _client_authenticated(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.credentials.get(client_id) == secret

    def _token(self, request: web.Request) -> ZakekeToken | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or self.clock() >= token.expires_at:
            return None
        return token

    # -- orders

    async def _post_order(self, request: web.Request) -> web.Response:
        token = self._token(request)
        if token is None:
            return _unauthorized()
        if not token.customer_code and not token.visitor_code:
            return _error(400, NO_CODE_IN_TOKEN)
        try:
            body = await read_json(request)
        except MalformedBody as exc:
            return _error(400, str(exc))
        problem = _order_problem(body)
        if problem is None:
            problem = self._unknown_design(body)
        if problem is not None:
            return _error(400, problem)
        order = self._register(body, token)
        self.ledger.record_create(order.code)
        mark_effect_applied(request)
        # The documents promise a status code only.
        return web.Response(status=200)

    def _unknown_design(self, body: Mapping[str, Any]) -> str | None:
        if self.known_designs is None:
            return None
        for detail in body.get("details") or ():
            if detail["designID"] not in self.known_designs:
                return f"Design id: {detail['designID']} not found"
        return None

    def _register(self, body: Mapping[str, Any], token: ZakekeToken) -> ZakekeOrder:
        now = self.clock()
        order = ZakekeOrder(
            id=self._next_order_id,
            code=body["orderCode"],
            order_date=body["orderDate"],
            session_id=body["sessionID"],
            total=float(body["total"]),
            customer_code=token.customer_code,
            visitor_code=token.visitor_code,
            registered_at=now,
        )
        self._next_order_id += 1
        for detail in body.get("details") or ():
            order.lines.append(ZakekeOrderLine(
                detail_code=detail.get("orderDetailCode"),
                sku=detail.get("sku"),
                design_id=detail["designID"],
                modification_id=detail.get("designModificationID") or None,
                composition=None,
                quantity=detail["quantity"],
                unit_price=float(detail["modelUnitPrice"]) + float(detail["designUnitPrice"]),
                files_ready_at=now + self._print_files_delay(),
            ))
        for detail in body.get("compositionDetails") or ():
            order.lines.append(ZakekeOrderLine(
                detail_code=detail.get("orderDetailCode"),
                sku=None,
                design_id=None,
                modification_id=None,
                composition=detail["composition"],
                quantity=detail["quantity"],
                unit_price=float(detail["unitPrice"]),
                files_ready_at=now + self._print_files_delay(),
            ))
        self.orders[order.id] = order
        return order

    def _print_files_delay(self) -> float:
        jitter = self.print_files_jitter_s
        return self.print_files_delay_s + (self.rng.uniform(0, jitter) if jitter > 0 else 0.0)

    async def _get_order_by_code(self, request: web.Request) -> web.Response:
        if self._token(request) is None:
            return _unauthorized()
        code = request.match_info["orderCode"]
        now = self.clock()
        # With duplicates registered, the first registration answers; one registered less
        # than `read_lag_s` ago is not readable yet.
        for order in self.orders.values():
            if order.code == code and now - order.registered_at >= self.read_lag_s:
                return json_response(self._order_json(order, request))
        return _error(404, f"Order code: {code} not found")

    async def _get_order_by_id(self, request: web.Request) -> web.Response:
        if self._token(request) is None:
            return _unauthorized()
        raw_id = request.match_info["orderID"]
        order = self.orders.get(int(raw_id)) if raw_id.isdigit() else None
        if order is None:
            return _error(404, f"Order id: {raw_id} not found")
        return json_response(self._order_json(order, request))

    async def _list_orders(self, request: web.Request) -> web.Response:
        if self._token(request) is None:
            return _unauthorized()
        newest_first = list(reversed(self.orders.values()))
        query = request.query
        if "pageSize" not in query and "pageNumber" not in query:
            return json_response([self._order_json(o, request) for o in newest_first])
        try:
            page_size = min(int(query.get("pageSize", "20")), 100)
            page_number = int(query.get("pageNumber", "1"))
        except ValueError:
            return _error(400, "pageSize and pageNumber must be integers")
        if page_size < 1 or page_number < 1:
            return _error(400, "pageSize and pageNumber must be positive")
        start = (page_number - 1) * page_size
        page = newest_first[start:start + page_size]
        headers = {
            "X-Total-Count": str(len(newest_first)),
            # As the documents show it: .NET's spelling of a boolean.
            "X-Has-More-Pages": "True" if start + page_size < len(newest_first) else "False",
        }
        return json_response([self._order_json(o, request) for o in page], headers=headers)

    def _order_json(self, order: ZakekeOrder, request: web.Request) -> dict[str, Any]:
        now = self.clock()
        return {
            "id": order.id,
            "code": order.code,
            "orderNumber": order.code,
            "salesChannel": None,
            "items": [self._item_json(line, now, request) for line in order.lines],
            "orderDate": order.order_date,
        }

    def _item_json(
        self, line: ZakekeOrderLine, now: float, request: web.Request
    ) -> dict[str, Any]:
        ready = now >= line.files_ready_at and (self.composition_files or line.composition is None)
        files_base = self._files_base(request)
        stem = quote(line.file_stem, safe="")
        item: dict[str, Any] = {
            "code": line.detail_code if self.echo_line_codes else None,
            "productSku": line.sku,
            "productName": None,
            "productTemplateId": None,
            "thumbnail": f"{files_base}/preview/{stem}.png",
            "quantity": line.quantity,
            "design": line.design_id,
            "preDesignedTemplateName": None,
            "printFilesStatus": "READY" if ready else "INPROCESS",
            "printingFilesZip": f"{files_base}/print/{stem}.zip" if ready else None,
            "printingFiles": [
                {"type": fmt, "url": f"{files_base}/print/{stem}.{fmt.lower()}"}
                for fmt in self.print_file_formats
            ] if ready else [],
            "price": {
                "value": round(line.unit_price * line.quantity, 2),
                "currency": self.currency,
            },
        }
        if line.composition is not None:
            item["composition"] = line.composition
        if line.modification_id is not None:
            item["designModificationID"] = line.modification_id
        return item

    def _files_base(self, request: web.Request) -> str:
        return self.files_base or f"{request.scheme}://{request.host}/files"

    # -- designs

    async def _get_design(self, request: web.Request) -> web.Response:
        token = self._token(request)
        if token is None:
            return _unauthorized()
        design_id = request.match_info["designID"]
        raw_quantity = request.match_info.get("quantity", "1")
        if not raw_quantity.isdigit() or int(raw_quantity) < 1:
            return _error(400, f"Invalid quantity: {raw_quantity}")
        if self.known_designs is not None and design_id not in self.known_designs:
            return _error(404, f"Design id: {design_id} not found")
        files_base = self._files_base(request)
        stem = quote(design_id, safe="")
        return json_response({
            "designID": design_id,
            "compositionID": None,
            "name": None,
            "modelCode": None,
            "modelID": 0,
            "previewimageurl": f"{files_base}/preview/{stem}.png",
            "designUnitPercentagePrice": 0,
            "designUnitPrice": self.design_unit_price,
            "customerCode": token.customer_code,
            "visitorCode": token.visitor_code,
            "previewFiles": [{"url": f"{files_base}/preview/{stem}.png", "sideName": "Front"}],
        })

    async def _get_output_zip(self, request: web.Request) -> web.Response:
        if self._token(request) is None:
            return _unauthorized()
        found = self._ready_line(request, request.match_info.get("modificationID"))
        if isinstance(found, web.Response):
            return found
        stem = quote(found.file_stem, safe="")
        return json_response({"url": f"{self._files_base(request)}/print/{stem}.zip"})

    async def _get_output_file(self, request: web.Request) -> web.Response:
        if self._token(request) is None:
            return _unauthorized()
        file_format = request.match_info["fileFormat"].upper()
        if file_format not in FILE_FORMATS:
            return _error(400, f"Invalid file format: {request.match_info['fileFormat']}")
        found = self._ready_line(request, request.query.get("modificationID"))
        if isinstance(found, web.Response):
            return found
        if file_format not in self.print_file_formats:
            return _error(404, f"No {file_format} print file for this design")
        stem = quote(found.file_stem, safe="")
        # The documents show the answer as a bare JSON string.
        return json_response(f"{self._files_base(request)}/print/{stem}.{file_format.lower()}")

    def _ready_line(
        self, request: web.Request, modification_id: str | None
    ) -> ZakekeOrderLine | web.Response:
        """The ordered line whose print files the design endpoints describe, or the answer
        that says why there is none yet."""
        design_id = request.match_info["designID"]
        lines = [
            line for order in self.orders.values() for line in order.lines
            if line.design_id == design_id
        ]
        not_found = _error(
            404, f"Design id: {design_id} not found in any order or print files not ready"
        )
        if not lines:
            return not_found
        if modification_id is None and all(line.modification_id for line in lines):
            return _error(400, NEEDS_MODIFICATION_ID)
        if modification_id is not None:
            lines = [line for line in lines if line.modification_id == modification_id]
        now = self.clock()
        ready = [line for line in lines if now >= line.files_ready_at]
        return ready[0] if ready else not_found

    async def _get_print_file(self, request: web.Request) -> web.StreamResponse:
        """The file's bytes, streamed: a PDF or PNG header, then bytes that follow from the
        file's name (so a test can tell a file from another, and the same file again)."""
        name = request.match_info["fileName"]
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".zip"):
            return web.Response(body=f"simulated print files {name}\n".encode(),
                                content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = print_file_size(name, self.print_file_bytes)
        await response.prepare(request)
        for chunk in print_file_chunks(name, self.print_file_bytes):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _get_design_items(self, request: web.Request) -> web.Response:
        """The design's items (`/v1/designs/{id}/items`): one side, one area, two items whose
        coordinates and dimensions (mm) follow from the design id."""
        if self._token(request) is None:
            return _unauthorized()
        design_id = request.match_info["designID"]
        if self.known_designs is not None and design_id not in self.known_designs:
            return _error(404, f"Design id: {design_id} not found")
        width, height = design_size_mm(design_id)
        # Together they span exactly `design_size_mm(design_id)`.
        items = [
            {"name": "artwork", "coordinates": {"x": 0, "y": 0, "unit": "mm"},
             "dimensions": {"width": width, "height": height - 20}},
            {"name": "caption", "text": "custom", "fontFamily": "Arial",
             "coordinates": {"x": 10, "y": height - 18, "unit": "mm"},
             "dimensions": {"width": width - 20, "height": 18}},
        ]
        return json_response({"variant": {"name": "default", "code": design_id, "sides": [
            {"name": "Front", "ppcm": 40, "sidePrintTypeName": "DTG",
             "areas": [{"name": "Print area", "gridName": None, "items": items}]}]}})


# ----------------------------------------------------------------------------- validation


def _order_problem(body: Any) -> str | None:
    """Why a registration body does not follow the Orders API page, or None."""
    if not isinstance(body, dict):
        return "The order must be a JSON object"
    if not isinstance(body.get("orderCode"), str) or not body["orderCode"].strip():
        return "orderCode is required"
    order_date = body.get("orderDate")
    if not isinstance(order_date, str) or not _is_iso8601(order_date):
        return "orderDate is required, as an ISO 8601 date-time"
    if not isinstance(body.get("sessionID"), str):
        return "sessionID is required"
    if not is_json_number(body.get("total")) or body["total"] < 0:
        return "total is required, as a non-negative number"
    details = body.get("details")
    compositions = body.get("compositionDetails")
    for name, value in (("details", details), ("compositionDetails", compositions)):
        if value is not None and not isinstance(value, list):
            return f"{name} must be an array"
    if not details and not compositions:
        return "The order has no details: send details or compositionDetails"
    for index, detail in enumerate(details or ()):
        problem = _detail_problem(detail)
        if problem:
            return f"details[{index}]: {problem}"
    for index, detail in enumerate(compositions or ()):
        problem = _composition_problem(detail)
        if problem:
            return f"compositionDetails[{index}]: {problem}"
    return None


def _detail_problem(detail: Any) -> str | None:
    if not isinstance(detail, dict):
        return "must be an object"
    if not isinstance(detail.get("designID"), str) or not detail["designID"].strip():
        return "designID is required"
    for price in ("modelUnitPrice", "designUnitPrice"):
        if not is_json_number(detail.get(price)) or detail[price] < 0:
            return f"{price} is required, as a non-negative number"
    for optional in ("orderDetailCode", "sku", "designModificationID"):
        if detail.get(optional) is not None and not isinstance(detail[optional], str):
            return f"{optional} must be a string"
    return _quantity_problem(detail)


def _composition_problem(detail: Any) -> str | None:
    if not isinstance(detail, dict):
        return "must be an object"
    if not isinstance(detail.get("composition"), str) or not detail["composition"].strip():
        return "composition is required"
    if not is_json_number(detail.get("unitPrice")) or detail["unitPrice"] < 0:
        return "unitPrice is required, as a non-negative number"
    if detail.get("orderDetailCode") is not None and not isinstance(detail["orderDetailCode"], str):
        return "orderDetailCode must be a string"
    return _quantity_problem(detail)


def _quantity_problem(detail: Mapping[str, Any]) -> str | None:
    if not is_json_int(detail.get("quantity")) or detail["quantity"] < 1:
        return "quantity is required, as an integer above 0"
    return None


def _is_iso8601(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _form_text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _error(status: int, message: str) -> web.Response:
    """Zakeke's error body, as the designs page shows it."""
    return json_response({"message": message, "errorCode": None}, status=status)


def _unauthorized() -> web.Response:
    return _error(401, "Unauthorized user. Check the token used for the call.")


def _oauth_error(error: str, status: int, description: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, status=status)


# ----------------------------------------------------------------------------- print files


def print_file_size(name: str, sizes: tuple[int, int]) -> int:
    """The size of the print-ready file `name`, within `sizes`, log-uniform (most are a few
    hundred KB, some tens of MB when the range allows)."""
    low, high = sizes
    draw = random.Random(f"size:{name}").random()
    return int(low * (high / low) ** draw) if high > low else low


def print_file_chunks(name: str, sizes: tuple[int, int], chunk: int = 256 * 1024) -> Iterator[bytes]:
    """The bytes of the print-ready file `name`, chunk by chunk, never all at once: its
    format's header, then bytes drawn from a generator seeded by the name, then its trailer."""
    size = print_file_size(name, sizes)
    head = b"\x89PNG\r\n\x1a\n" if name.lower().endswith(".png") else b"%PDF-1.7\n"
    tail = b"" if name.lower().endswith(".png") else b"\n%%EOF\n"
    body = max(0, size - len(head) - len(tail))
    rng = random.Random(f"bytes:{name}")
    yield head
    while body > 0:
        step = min(chunk, body)
        yield rng.randbytes(step)
        body -= step
    if tail:
        yield tail


def design_size_mm(design_id: str) -> tuple[int, int]:
    """The bounding box of the design's items, in mm (what `/items` describes)."""
    rng = random.Random(f"design:{design_id}")
    return rng.randint(120, 300), rng.randint(150, 380)
