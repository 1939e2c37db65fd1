"""Zakeke's answers as data: tokens, design prices, print files, and what an order means for
us (is every design line's print production READY, and which files each line has); and the
one translation of a status that is not the success wanted. Pure, no I/O."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from orderflow.adapters.errors import VendorAuthFailed, VendorError, VendorRejected
from orderflow.adapters.http import HttpAnswer, default_error_for
from orderflow.adapters.outcomes import LinePrintFiles, PrintFileRef
from orderflow.adapters.zakeke.request import (
    PRINT_FILES_IN_PROCESS,
    PRINT_FILES_READY,
    VENDOR,
    design_id_of,
    design_lines,
    modification_id_of,
)
from orderflow.contracts.events import Order, OrderLine

# When a token answer carries no usable `expires_in`, reuse the token this long: a 401
# replaces it early anyway.
DEFAULT_TOKEN_LIFETIME_S = 300.0
# A token is dropped this long before Zakeke says it expires (at most a minute, at most a
# tenth of its life), so a request never leaves with a token that dies on the way.
MAX_TOKEN_SAFETY_MARGIN_S = 60.0
TOKEN_SAFETY_MARGIN_SHARE = 0.1
# A bearer token is a few hundred characters (a JWT a few thousand).
MAX_TOKEN_CHARS = 8_192


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


def design_unit_price_from(data: Any, unit_price: Decimal = Decimal(0)) -> Decimal:
    """The design's part of the line's `unit_price` (which includes it), from `GET
    /v3/designs/{designID}/{quantity}` (decode the body with `parse_float=Decimal`). Zakeke
    prices a design one way or the other: `designUnitPercentagePrice`, the "percentage to be
    applied to the product base unit price to obtain the mark-up price", where it is set
    (the base is then unit_price / (1 + p/100)); else `designUnitPrice`, the "unit mark-up
    price". Never both added. Cents rounded half up. ValueError when neither is there."""
    if not isinstance(data, dict):
        raise ValueError("design answer is not a JSON object")
    fixed = _price(data.get("designUnitPrice"), "designUnitPrice")
    percentage = _price(data.get("designUnitPercentagePrice"), "designUnitPercentagePrice")
    if fixed is None and percentage is None:
        raise ValueError("design answer holds no designUnitPrice")
    if percentage:
        base = unit_price / (1 + percentage / 100)
        return (unit_price - base).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return fixed if fixed is not None else Decimal(0)


def zip_url_from(data: Any) -> str:
    """`{"url": ...}` of the output-files zip endpoint."""
    if isinstance(data, dict) and isinstance(data.get("url"), str) and data["url"]:
        return str(data["url"])
    raise ValueError("print files answer holds no url")


def file_url_from(data: Any) -> str:
    """The answer of `/v1/designs/{id}/outputfiles/{format}`: "the string representing the
    URL of the requested file" (the page); `{"url": ...}` is read too."""
    if isinstance(data, dict):
        data = data.get("url")
    if isinstance(data, str) and data.startswith(("https://", "http://")):
        return data
    raise ValueError("print-ready file answer holds no http(s) URL")


def design_size_from(data: Any) -> tuple[int, int] | None:
    """The bounding box, in whole mm, of the items of the design's first side that has any
    (`/v1/designs/{id}/items`: each item's `coordinates` and `dimensions`, in mm); None when
    no item gives a size."""
    sides = (data.get("variant") or {}).get("sides") if isinstance(data, dict) else None
    for side in sides if isinstance(sides, list) else []:
        boxes = []
        for area in (side.get("areas") or []) if isinstance(side, dict) else []:
            for item in (area.get("items") or []) if isinstance(area, dict) else []:
                box = _item_box(item)
                if box is not None:
                    boxes.append(box)
        if boxes:
            width = max(b[2] for b in boxes) - min(b[0] for b in boxes)
            height = max(b[3] for b in boxes) - min(b[1] for b in boxes)
            if width >= 1 and height >= 1:
                return round(width), round(height)
    return None


def _item_box(item: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(item, dict):
        return None
    where, size = item.get("coordinates") or {}, item.get("dimensions") or {}
    if not isinstance(where, dict) or not isinstance(size, dict):
        return None
    values = [where.get("x", 0), where.get("y", 0), size.get("width"), size.get("height")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e5
               for v in values):
        return None
    x, y, width, height = (float(v) for v in values)
    return x, y, x + width, y + height


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
    design_id = design_id_of(line)
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
        modification_id=modification_id_of(line),
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
        return lambda item: item.get("designModificationID") == modification_id_of(line)

    def by_design(line: OrderLine) -> Callable[[Mapping[str, Any]], bool]:
        return lambda item: (item.get("design") == design_id_of(line)
                             and not item.get("designModificationID"))

    for line in lines:
        pair(line, by_code(line))
    for line in lines:
        if line.line_id not in matched and modification_id_of(line) is not None:
            pair(line, by_modification(line))
    for line in lines:
        if line.line_id not in matched and modification_id_of(line) is None:
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
                     if id(item) not in taken and item.get("design") == design_id_of(line)]
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


# What Zakeke's legacy order page says a 500 of the registration means.
UNABLE_TO_PLACE = "unable to place the order"


def zakeke_error(operation: str, answer: HttpAnswer) -> VendorError:
    """The one reading of a Zakeke status that is not the success the caller wanted.

    Any 4xx but 429 at the token endpoint says nothing about the order at hand: 400/401/403
    are wrong client credentials, 404/405 a wrong base URL (a token is asked for before any
    other call, so a wrong base URL shows here first). An outage of the account, then,
    retried and alerted on, never a rejection of every order. Everything else (a 404 to
    the registration may name a missing design) follows the shared
    taxonomy: 429 throttled (Retry-After), 5xx unavailable, 401/403 auth, other 4xx
    rejected with Zakeke's `message`."""
    status = answer.status
    if (operation == "register_order" and status == 500
            and UNABLE_TO_PLACE in answer.message().lower()):
        # The legacy order page: "500 Unable to place the order". Said of this order, not of
        # Zakeke: a refusal, neither retried for days nor held against every Zakeke call.
        return VendorRejected(VENDOR, operation, answer.message(), status)
    if operation == "token" and 400 <= status < 500 and status != 429:
        hint = ("check ORDERFLOW_ZAKEKE__BASE_URL" if status in (404, 405)
                else "check ORDERFLOW_ZAKEKE__CLIENT_ID and __CLIENT_SECRET")
        return VendorAuthFailed(
            VENDOR, operation, f"token refused with HTTP {status} ({hint}): {answer.message()}",
            status)
    return default_error_for(VENDOR, operation, answer)


def needs_modification_id(error: VendorError) -> bool:
    """Zakeke's 400 for a design with a file per modification asked for without one: "Design
    Files have ModificationID: need to specify ModificationID." (designs page, error codes)."""
    return error.status == 400 and "need to specify modificationid" in error.message.lower()


def is_auth_refusal(answer: HttpAnswer) -> bool:
    return answer.status in (401, 403)
