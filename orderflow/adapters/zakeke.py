"""Zakeke (product customizer): register the order, then follow the print-ready files.

What the Zakeke pages and the facts gathered beside them say, and what this module does
about each:

- Every call carries an S2S OAuth token from `POST /token` (form body
  `grant_type=client_credentials&access_type=S2S`, HTTP Basic with client id and secret).
  One token page spells the field `access-token`; both spellings are read. Tokens are reused
  until shortly before `expires_in`; a 401/403 drops the token and the call is tried once
  more with a fresh one.
- Registering an order needs a token requested with `customercode` (a registered
  customer) or `visitorcode` (a guest): Zakeke answers 400 to a registration whose token
  carries neither. Those tokens are cached per code in a bounded LRU. Reads use one plain
  S2S token, so polling never costs a token request per customer.
- `POST /v2/order` promises only a status code, and nothing says a second post of the same
  code is refused: it may register the order twice. The engine records the intent to
  register before every post; when one exists, `submit` asks `GET /v2/order/{orderCode}`
  first and adopts what Zakeke already has. A read right after a registration can still
  answer 404, so after an intent the order must stay absent for
  `ORDERFLOW_ZAKEKE__REGISTER_SETTLE_S` before it is posted again. After a post the order
  is read back (which may still 404 for a moment) to learn Zakeke's `id`.
- Print files are rendered asynchronously: items stay `INPROCESS` (and the output-file
  endpoints answer 404) until they are `READY`.

Layout: pure mapping first (order -> request body, Zakeke answers -> summaries, HTTP
statuses -> errors), then the token cache, then the adapter that does the I/O.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any, Literal
from urllib.parse import quote

import structlog

from orderflow.adapters.errors import (
    NotProvenAbsent,
    VendorAuthFailed,
    VendorError,
    VendorRejected,
    VendorUnavailable,
    build_or_refuse,
    require_credentials,
)
from orderflow.adapters.http import (
    HttpAnswer,
    RequestObserver,
    VendorHttp,
    basic_authorization,
    default_error_for,
)
from orderflow.adapters.outcomes import LinePrintFiles, Observation, PairState, PrintFileRef
from orderflow.config.settings import ZakekeSettings
from orderflow.contracts.events import Order, OrderLine, Vendor, VendorStatus

log = structlog.get_logger(__name__)

VENDOR = Vendor.ZAKEKE

# Zakeke's words for an item's print-file production (`printFilesStatus`).
PRINT_FILES_READY = "READY"
PRINT_FILES_IN_PROCESS = "INPROCESS"

# When a token answer carries no usable `expires_in`, reuse the token this long: a 401
# replaces it early anyway.
DEFAULT_TOKEN_LIFETIME_S = 300.0
# A token is dropped this long before Zakeke says it expires (at most a minute, at most a
# tenth of its life), so a request never leaves with a token that dies on the way.
MAX_TOKEN_SAFETY_MARGIN_S = 60.0
TOKEN_SAFETY_MARGIN_SHARE = 0.1
# A bearer token is a few hundred characters (a JWT a few thousand).
MAX_TOKEN_CHARS = 8_192

# ----------------------------------------------------------------------------- order -> request


def zakeke_lines(order: Order) -> list[OrderLine]:
    """The lines Zakeke must hear about: those customized with Zakeke, nothing else."""
    return [
        line for line in order.lines
        if line.zakeke is not None
    ]


def design_lines(order: Order) -> list[OrderLine]:
    """Customizer lines (a `design_id`): Zakeke renders print files for these."""
    return [line for line in zakeke_lines(order) if _design_id(line) is not None]


def composition_lines(order: Order) -> list[OrderLine]:
    """Configurator lines (a `composition_id`)."""
    return [
        line for line in zakeke_lines(order)
        if line.zakeke is not None and line.zakeke.composition_id is not None
    ]


def _design_id(line: OrderLine) -> str | None:
    return line.zakeke.design_id if line.zakeke is not None else None


def _modification_id(line: OrderLine) -> str | None:
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
            detail: dict[str, Any] = {
                "orderDetailCode": line.line_id,
                "sku": line.sku,
                "designID": customization.design_id,
                "modelUnitPrice": line.unit_price,
                "designUnitPrice": design_price,
                "quantity": line.quantity,
            }
            modification_id = _modification_id(line)
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
    design_id = _design_id(line)
    assert design_id is not None
    return f"/v3/designs/{quote(design_id, safe='')}/{line.quantity}"


def print_files_zip_path(line: OrderLine) -> str:
    design_id = _design_id(line)
    assert design_id is not None
    path = f"/v1/designs/{quote(design_id, safe='')}/outputfiles/zip"
    modification_id = _modification_id(line)
    if modification_id is not None:
        path += f"/{quote(modification_id, safe='')}"
    return path


# ----------------------------------------------------------------------------- answers -> data


@dataclass(frozen=True, slots=True)
class GrantedToken:
    access_token: str = field(repr=False)
    expires_in: float | None


def parse_token_answer(data: Any) -> GrantedToken:
    """Read `POST /token`'s answer; raises ValueError when it holds no token."""
    if not isinstance(data, dict):
        raise ValueError("token answer is not a JSON object")
    token = data.get("access_token") or data.get("access-token")
    if not isinstance(token, str) or not token:
        raise ValueError("token answer holds no access_token")
    if len(token) > MAX_TOKEN_CHARS or not all("!" <= char <= "~" for char in token):
        # It goes into the Authorization header: a line break there is header injection,
        # which the HTTP client refuses with an error of its own.
        raise ValueError("token answer's access_token is not a printable ASCII token")
    expires_in: float | None = None
    raw = data.get("expires_in")
    if isinstance(raw, int | float | Decimal | str) and not isinstance(raw, bool):
        try:
            expires_in = float(raw)
        except ValueError:
            expires_in = None
        if expires_in is not None and not math.isfinite(expires_in):
            expires_in = None
    return GrantedToken(token, expires_in)


def token_lifetime(expires_in: float | None) -> float:
    """How long to reuse a token, in seconds: `expires_in` minus a safety margin."""
    if expires_in is None:
        return DEFAULT_TOKEN_LIFETIME_S
    margin = min(MAX_TOKEN_SAFETY_MARGIN_S, max(0.0, expires_in) * TOKEN_SAFETY_MARGIN_SHARE)
    return max(0.0, expires_in - margin)


def _price(raw: Any, name: str) -> Decimal | None:
    """A money value of a Zakeke answer as an exact Decimal; None when absent."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(f"{name} is not a number")
    if isinstance(raw, Decimal | int):
        price = Decimal(raw)
    elif isinstance(raw, str):
        try:
            price = Decimal(raw)
        except ArithmeticError as exc:
            raise ValueError(f"{name} {raw[:40]!r} is not a number") from exc
    elif isinstance(raw, float):
        price = Decimal(repr(raw))
    else:
        raise ValueError(f"{name} is not a number")
    if not price.is_finite():
        raise ValueError(f"{name} {raw!r} is not a number")
    return price


def design_unit_price_from(data: Any, model_unit_price: Decimal = Decimal(0)) -> Decimal:
    """The design's unit mark-up from `GET /v3/designs/{designID}/{quantity}` (decode the
    body with `parse_float=Decimal`): `designUnitPrice`, plus `designUnitPercentagePrice`
    percent of the product's base unit price (our line's `unit_price`, Zakeke's
    `modelUnitPrice`) where the back office prices designs by percentage; cents rounded half
    up. Raises ValueError when neither is there."""
    if not isinstance(data, dict):
        raise ValueError("design answer is not a JSON object")
    fixed = _price(data.get("designUnitPrice"), "designUnitPrice")
    percentage = _price(data.get("designUnitPercentagePrice"), "designUnitPercentagePrice")
    if fixed is None and percentage is None:
        raise ValueError("design answer holds no designUnitPrice")
    price = fixed if fixed is not None else Decimal(0)
    if percentage:
        markup = model_unit_price * percentage / 100
        price = (price + markup).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return price


def zip_url_from(data: Any) -> str:
    """`{"url": ...}` of the output-files zip endpoint."""
    if isinstance(data, dict) and isinstance(data.get("url"), str) and data["url"]:
        return str(data["url"])
    raise ValueError("print files answer holds no url")


def order_ref_from(data: Mapping[str, Any]) -> str | None:
    """Zakeke's `id` of the order, as a string."""
    ref = data.get("id")
    if ref is None or isinstance(ref, bool) or ref == "":
        return None
    return str(ref)


@dataclass(frozen=True, slots=True)
class DesignLineFiles:
    """One design line of our order and the print files its Zakeke item lists (None: no
    Zakeke item matches the line)."""

    line: OrderLine
    files: LinePrintFiles | None


@dataclass(frozen=True, slots=True)
class ZakekeOrderSummary:
    """What a Zakeke order (the `GET /v2/order/{orderCode}` answer) means for us."""

    vendor_order_ref: str | None
    ready: bool
    vendor_state: str
    lines: tuple[DesignLineFiles, ...]


def _item_files(line: OrderLine, item: Mapping[str, Any]) -> LinePrintFiles:
    design_id = _design_id(line)
    assert design_id is not None
    zip_url = item.get("printingFilesZip")
    files: list[PrintFileRef] = []
    listed = item.get("printingFiles")
    for entry in listed if isinstance(listed, list) else ():
        if not isinstance(entry, dict):
            continue
        file_format, url = entry.get("type"), entry.get("url")
        # Both are required in order.print_files_ready; an entry without them is unusable.
        if isinstance(file_format, str) and file_format and isinstance(url, str) and url:
            files.append(PrintFileRef(format=file_format, url=url))
    return LinePrintFiles(
        line_id=line.line_id,
        design_id=design_id,
        modification_id=_modification_id(line),
        zip_url=zip_url if isinstance(zip_url, str) and zip_url else None,
        files=tuple(files),
    )


def match_design_items(
    lines: Sequence[OrderLine], items: Sequence[Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """Pair each design line with its Zakeke item. An item serves one line only.

    1. by `code` (our `orderDetailCode`, the line id), for all lines;
    2. by `designModificationID`, for the lines that have one (Names and Numbers: one design,
       a modification per line, and a print file each);
    3. by `design`, only for lines without a modification id, and only among items that
       name no modification: a names-and-numbers line matched by design alone could be
       given another line's files.
    Returns items by line id; a line left unpaired gets its files from the designs API."""
    unused = list(range(len(items)))
    matched: dict[str, Mapping[str, Any]] = {}

    def pair(line: OrderLine, accepts: Callable[[Mapping[str, Any]], bool]) -> None:
        for index in unused:
            if accepts(items[index]):
                matched[line.line_id] = items[index]
                unused.remove(index)
                return

    def by_code(line: OrderLine) -> Callable[[Mapping[str, Any]], bool]:
        return lambda item: item.get("code") == line.line_id

    def by_modification(line: OrderLine) -> Callable[[Mapping[str, Any]], bool]:
        return lambda item: item.get("designModificationID") == _modification_id(line)

    def by_design(line: OrderLine) -> Callable[[Mapping[str, Any]], bool]:
        return lambda item: (item.get("design") == _design_id(line)
                             and not item.get("designModificationID"))

    for line in lines:
        pair(line, by_code(line))
    for line in lines:
        if line.line_id not in matched and _modification_id(line) is not None:
            pair(line, by_modification(line))
    for line in lines:
        if line.line_id not in matched and _modification_id(line) is None:
            pair(line, by_design(line))
    return matched


def _print_files_status(item: Mapping[str, Any]) -> str:
    return str(item.get("printFilesStatus") or "").strip().upper()


def summarize_zakeke_order(order: Order, data: Any) -> ZakekeOrderSummary:
    """Read a Zakeke order: are the print files of every design line of our order READY, and
    what files does each have. Raises ValueError for an answer not shaped like the
    documented order.

    Completion is decided on design lines only: nothing says configurator (composition)
    items ever get print files, so they never hold an order back. A design line no item was
    paired with (Zakeke echoing neither our line code nor the modification id) is ready when
    every item of its design that no other line took is READY, and is not ready while its
    design has no item listed yet."""
    if not isinstance(data, dict):
        raise ValueError("order answer is not a JSON object")
    items = data.get("items")
    if items is None:
        items = []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError("order answer's items is not a list of objects")
    lines = design_lines(order)
    matched = match_design_items(lines, items)
    taken = {id(item) for item in matched.values()}
    waiting: list[str] = []  # the state words of the design lines not ready yet
    for line in lines:
        if line.line_id in matched:
            words = [_print_files_status(matched[line.line_id])]
        else:
            words = [_print_files_status(item) for item in items
                     if id(item) not in taken and item.get("design") == _design_id(line)]
            if not words:
                words = [PRINT_FILES_IN_PROCESS]  # its design is not listed yet
        waiting.extend(word for word in words if word != PRINT_FILES_READY)
    ready = not waiting
    # Zakeke documents only INPROCESS besides READY; any other word is passed through.
    vendor_state = PRINT_FILES_READY if ready else next(
        (word for word in waiting if word), PRINT_FILES_IN_PROCESS)
    return ZakekeOrderSummary(
        vendor_order_ref=order_ref_from(data),
        ready=ready,
        vendor_state=vendor_state,
        lines=tuple(
            DesignLineFiles(
                line,
                _item_files(line, matched[line.line_id]) if line.line_id in matched else None,
            )
            for line in lines
        ),
    )


# ----------------------------------------------------------------------------- HTTP -> errors


def zakeke_error(operation: str, answer: HttpAnswer) -> VendorError:
    """The one reading of a Zakeke status that is not the success the caller wanted.

    A refusal at the token endpoint (400/401/403) means our client credentials are wrong:
    an outage of the account, retried, never a rejection of the order at hand. Everything
    else follows the shared taxonomy: 429 throttled (Retry-After), 5xx unavailable, 401/403
    auth, other 4xx rejected with Zakeke's `message`."""
    if operation == "token" and answer.status in (400, 401, 403):
        return VendorAuthFailed(
            VENDOR, operation, f"token refused: {answer.message()}", answer.status
        )
    return default_error_for(VENDOR, operation, answer)


def decode_json(operation: str, answer: HttpAnswer) -> Any:
    """A success body as JSON, with JSON decimals as exact `Decimal`s. A body we cannot
    read is an outage of the vendor, not a reason to reject the order."""
    try:
        return json.loads(answer.body, parse_float=Decimal)
    except ValueError as exc:
        raise VendorUnavailable(
            VENDOR, operation, f"unreadable answer (HTTP {answer.status})", answer.status
        ) from exc


def _is_success(answer: HttpAnswer) -> bool:
    return 200 <= answer.status < 300


def _is_auth_refusal(answer: HttpAnswer) -> bool:
    return answer.status in (401, 403)


# ----------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class CachedToken:
    value: str = field(repr=False)
    expires_at: float


TokenFetcher = Callable[[TokenCode | None], Awaitable[GrantedToken]]


class S2STokenCache:
    """Zakeke S2S tokens: one plain token (no code) for reads, and registration tokens per
    customer or visitor code in an LRU bounded by `max_codes`. Each is reused until shortly
    before it expires. Callers that need a token nobody holds yet share one request for it
    (single flight): a burst of polls after expiry makes one token call, not a stampede. A
    caller that gives up (cancellation) does not cancel the request the others wait on."""

    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        max_codes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_codes < 1:
            raise ValueError("max_codes must be at least 1")
        self._fetch = fetch
        self._max_codes = max_codes
        self._clock = clock
        self._read_token: CachedToken | None = None
        self._by_code: OrderedDict[TokenCode, CachedToken] = OrderedDict()
        self._inflight: dict[TokenCode | None, asyncio.Task[CachedToken]] = {}

    @property
    def cached_codes(self) -> tuple[TokenCode, ...]:
        """Codes holding a token, least recently used first."""
        return tuple(self._by_code)

    async def get(self, code: TokenCode | None) -> CachedToken:
        cached = self._cached(code)
        if cached is not None:
            return cached
        task = self._inflight.get(code)
        if task is None:
            task = asyncio.create_task(self._fetch_and_keep(code), name=f"zakeke-token-{code}")
            self._inflight[code] = task
            task.add_done_callback(partial(self._fetch_done, code))
        return await asyncio.shield(task)

    def discard(self, code: TokenCode | None, token: CachedToken) -> None:
        """Forget `token` (Zakeke refused it), unless a newer one already replaced it."""
        if code is None:
            if self._read_token is token:
                self._read_token = None
        elif self._by_code.get(code) is token:
            del self._by_code[code]

    async def close(self) -> None:
        """Cancel token requests under way and forget every token."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._read_token = None
        self._by_code.clear()

    def _cached(self, code: TokenCode | None) -> CachedToken | None:
        token = self._read_token if code is None else self._by_code.get(code)
        if token is None:
            return None
        if self._clock() >= token.expires_at:
            self.discard(code, token)
            return None
        if code is not None:
            self._by_code.move_to_end(code)
        return token

    async def _fetch_and_keep(self, code: TokenCode | None) -> CachedToken:
        # Lifetime counts from before the request left: the answer's `expires_in` started
        # running at Zakeke somewhere in between.
        requested_at = self._clock()
        granted = await self._fetch(code)
        token = CachedToken(granted.access_token, requested_at + token_lifetime(granted.expires_in))
        if code is None:
            self._read_token = token
        else:
            self._by_code[code] = token
            self._by_code.move_to_end(code)
            while len(self._by_code) > self._max_codes:
                self._by_code.popitem(last=False)
        return token

    def _fetch_done(self, code: TokenCode | None, task: asyncio.Task[CachedToken]) -> None:
        if self._inflight.get(code) is task:
            del self._inflight[code]
        if not task.cancelled():
            # Mark the failure as seen: every waiter may have been cancelled meanwhile.
            task.exception()


# ----------------------------------------------------------------------------- the adapter


class ZakekeAdapter:
    """Registers orders with Zakeke and follows their print-ready files.

    `submit` adopts an order Zakeke already knows (looked up by code), otherwise registers
    it; `poll` reports SUBMITTED (vendor_state INPROCESS) until every item is READY, then
    COMPLETED with one `LinePrintFiles` per design line."""

    vendor: Vendor = VENDOR

    def __init__(
        self,
        settings: ZakekeSettings,
        observer: RequestObserver | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        # Epoch time, the clock of the engine's `PairState.intent_at`.
        self._wall_clock = wall_clock
        self._http = VendorHttp.for_vendor(VENDOR, settings, observer, json_serialize=dumps_exact_json)
        self._tokens = S2STokenCache(
            self._request_token, max_codes=settings.token_cache_size, clock=clock
        )

    async def start(self) -> None:
        require_credentials(VENDOR, self._settings)
        await self._http.start()

    async def stop(self) -> None:
        await self._tokens.close()
        await self._http.stop()

    # ------------------------------------------------------------------ engine calls

    async def submit(self, order: Order, state: PairState) -> Observation:
        if not zakeke_lines(order):
            raise VendorRejected(
                VENDOR, "register_order", "the order has no line customized with Zakeke"
            )
        # Refused before any call when Zakeke's format cannot carry the order at all.
        build_or_refuse(VENDOR, "register_order", lambda: zakeke_order_date(order))
        if state.intent_at is not None:
            # A registration may have happened (its answer lost, or its sender gone).
            existing = await self._get_order(order)
            if existing is not None:
                # Registered before: never post twice.
                observation = await self._observe(order, existing, state.vendor_order_ref)
                log.info("zakeke_order_adopted", order_id=order.order_id,
                         vendor_order_ref=observation.vendor_order_ref)
                return observation
            waited = self._wall_clock() - state.intent_at
            settle = self._settings.register_settle_s
            if waited < settle:
                # One 404 right after a registration proves nothing: Zakeke's reads lag.
                raise NotProvenAbsent(
                    VENDOR, "get_order",
                    f"a registration {waited:.0f}s ago is not proven absent yet (reads lag; "
                    f"registering again only after {settle:g}s, "
                    f"ORDERFLOW_ZAKEKE__REGISTER_SETTLE_S)", 404)

        prices = await self._design_unit_prices(order)
        body = build_or_refuse(VENDOR, "register_order", lambda: build_register_body(order, prices))
        await state.intend_to_create()
        answer = await self._authorized(
            "register_order", "POST", "/v2/order",
            code=registration_code(order), json_body=body,
        )
        if not _is_success(answer):
            raise zakeke_error("register_order", answer)
        return await self._read_back(order)

    async def poll(self, order: Order, state: PairState) -> Observation:
        data = await self._get_order(order)
        if data is None:
            # Zakeke may still lag behind the registration: nothing new to report.
            return Observation(VendorStatus.SUBMITTED, state.vendor_order_ref, state.vendor_state)
        return await self._observe(order, data, state.vendor_order_ref)

    # ------------------------------------------------------------------ steps

    async def _read_back(self, order: Order) -> Observation:
        """After a successful post, learn Zakeke's id. The order is registered whatever
        happens here, so no error may leave: one would make the engine submit again, and a
        lookup that still lags would then post a second registration."""
        data: Any = None
        try:
            data = await self._get_order(order)
            if data is None:
                return Observation(VendorStatus.SUBMITTED)
            return await self._observe(order, data, None)
        except VendorError as exc:
            log.warning(
                "zakeke_read_back_failed", order_id=order.order_id, error=str(exc),
            )
            ref = order_ref_from(data) if isinstance(data, dict) else None
            return Observation(VendorStatus.SUBMITTED, ref)

    async def _observe(
        self, order: Order, data: Any, known_ref: str | None
    ) -> Observation:
        try:
            summary = summarize_zakeke_order(order, data)
        except ValueError as exc:
            raise VendorUnavailable(VENDOR, "get_order", f"unreadable order: {exc}") from exc
        ref = summary.vendor_order_ref or known_ref
        if not summary.ready:
            return Observation(VendorStatus.SUBMITTED, ref, summary.vendor_state)
        print_files: list[LinePrintFiles] = []
        for entry in summary.lines:
            files = entry.files
            if files is None or files.zip_url is None:
                # READY without a zip URL on the item (or no item for the line): the
                # designs API hands out the zip, or 404 while it is not rendered yet.
                zip_url = await self._print_files_zip(entry.line)
                if zip_url is None:
                    return Observation(VendorStatus.SUBMITTED, ref, PRINT_FILES_IN_PROCESS)
                files = _with_zip(entry.line, files, zip_url)
            print_files.append(files)
        return Observation(
            VendorStatus.COMPLETED, ref, PRINT_FILES_READY, print_files=tuple(print_files)
        )

    async def _get_order(self, order: Order) -> dict[str, Any] | None:
        """Zakeke's order for our code, or None when Zakeke does not know it (yet)."""
        answer = await self._authorized("get_order", "GET", order_path(order), code=None)
        if answer.status == 404:
            return None
        if not _is_success(answer):
            raise zakeke_error("get_order", answer)
        data = decode_json("get_order", answer)
        if not isinstance(data, dict):
            # Only a 404 may mean "unknown": a 200 we cannot read must never lead to a post.
            raise VendorUnavailable(
                VENDOR, "get_order", "order answer is not a JSON object", answer.status
            )
        return data

    async def _design_unit_prices(self, order: Order) -> dict[str, Decimal]:
        prices: dict[str, Decimal] = {}
        for line in lines_needing_design_price(order):
            modification_id = _modification_id(line)
            params = {"modificationID": modification_id} if modification_id else None
            answer = await self._authorized(
                "get_design", "GET", design_path(line), code=None, params=params
            )
            if not _is_success(answer):
                # 404: the order names a design Zakeke does not have, a permanent refusal.
                raise zakeke_error("get_design", answer)
            try:
                prices[line.line_id] = design_unit_price_from(decode_json("get_design", answer),
                                                              line.unit_price)
            except ValueError as exc:
                raise VendorUnavailable(VENDOR, "get_design", str(exc), answer.status) from exc
        return prices

    async def _print_files_zip(self, line: OrderLine) -> str | None:
        answer = await self._authorized(
            "get_print_files", "GET", print_files_zip_path(line), code=None
        )
        if answer.status == 404:
            return None
        if not _is_success(answer):
            raise zakeke_error("get_print_files", answer)
        try:
            return zip_url_from(decode_json("get_print_files", answer))
        except ValueError as exc:
            raise VendorUnavailable(VENDOR, "get_print_files", str(exc), answer.status) from exc

    # ------------------------------------------------------------------ HTTP with tokens

    async def _authorized(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        code: TokenCode | None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """One API call with a bearer token. A 401/403 drops that token and the call is tried
        once more with a fresh one; refused again, it is an auth outage."""
        token = await self._tokens.get(code)
        answer = await self._http.request(
            operation, method, path, json_body=json_body, params=params,
            headers={"Authorization": f"Bearer {token.value}"},
        )
        if not _is_auth_refusal(answer):
            return answer
        self._tokens.discard(code, token)
        token = await self._tokens.get(code)
        answer = await self._http.request(
            operation, method, path, json_body=json_body, params=params,
            headers={"Authorization": f"Bearer {token.value}"},
        )
        if not _is_auth_refusal(answer):
            return answer
        self._tokens.discard(code, token)
        raise VendorAuthFailed(
            VENDOR, operation, f"refused a fresh token: {answer.message()}", answer.status
        )

    def _client_authorization(self) -> str:
        secret = self._settings.client_secret
        return basic_authorization(self._settings.client_id or "",
                                   secret.get_secret_value() if secret else "")

    async def _request_token(self, code: TokenCode | None) -> GrantedToken:
        form = {"grant_type": "client_credentials", "access_type": "S2S"}
        if code is not None:
            form[code.kind] = code.value
        answer = await self._http.request(
            "token", "POST", "/token", form=form,
            headers={"Authorization": self._client_authorization()},
        )
        if not _is_success(answer):
            raise zakeke_error("token", answer)
        try:
            return parse_token_answer(decode_json("token", answer))
        except ValueError as exc:
            raise VendorUnavailable(VENDOR, "token", str(exc), answer.status) from exc


def _with_zip(line: OrderLine, files: LinePrintFiles | None, zip_url: str) -> LinePrintFiles:
    design_id = _design_id(line)
    assert design_id is not None
    return LinePrintFiles(
        line_id=line.line_id,
        design_id=design_id,
        modification_id=_modification_id(line),
        zip_url=zip_url,
        files=files.files if files is not None else (),
    )


__all__ = [
    "CachedToken",
    "DesignLineFiles",
    "GrantedToken",
    "S2STokenCache",
    "TokenCode",
    "ZakekeAdapter",
    "ZakekeOrderSummary",
    "build_register_body",
    "composition_lines",
    "decode_json",
    "design_lines",
    "design_unit_price_from",
    "dumps_exact_json",
    "match_design_items",
    "order_path",
    "parse_token_answer",
    "registration_code",
    "summarize_zakeke_order",
    "token_lifetime",
    "zakeke_error",
    "zakeke_lines",
    "zip_url_from",
]
