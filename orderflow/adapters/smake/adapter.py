"""SmakeAdapter: the I/O. Ask first when a create may have happened, create only when Smake
holds nothing for the order, then follow it (one order, or up to 100 at a time)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import structlog

from orderflow.adapters.artwork import CONTENT_TYPES, ArtworkSource, artwork_lines
from orderflow.adapters.errors import (
    VendorError,
    VendorRejected,
    VendorUnavailable,
    build_or_refuse,
    require_credentials,
)
from orderflow.adapters.http import RequestObserver, VendorHttp, path_safe_ref
from orderflow.adapters.outcomes import Observation, PairState
from orderflow.adapters.smake.answers import (
    created_order_id,
    exact_matches,
    has_next_page,
    id_sort_key,
    media_id_from,
    observation_from_order,
    order_id_of,
    smake_error,
)
from orderflow.adapters.smake.request import (
    VENDOR,
    Artwork,
    refusal_before_create,
    smake_create_body,
)
from orderflow.config.settings import SmakeSettings
from orderflow.contracts.events import Order, OrderLine, VendorStatus

log = structlog.get_logger(__name__)

# The lookup asks for Smake's largest page. Partial matches can fill many pages; past this
# many the lookup gives up (an error, retried later) rather than create on a guess.
LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_PAGES = 100


# Smake orders that will never be produced: a look-up before creating passes them by.
ENDED_UNMADE = frozenset({"failed", "cancelled"})
# Streaming a print-ready file of up to 51.2 MB from Zakeke to Smake takes longer than a call.
UPLOAD_TIMEOUT_S = 300.0


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
        artwork: ArtworkSource | None = None,
    ) -> None:
        self._settings = settings
        # Where the print-ready files of lines designed at Zakeke come from (None: Zakeke is
        # not enabled, and such lines go without a design).
        self._artwork = artwork
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
        if state.intent_at is not None or state.ask_first:
            # A create may have happened (its answer lost, its sender gone, or another copy
            # of the order created it): ask first.
            existing = await self._find(order.order_id, again=state.again, since=state.since)
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
        return observation_from_order(answer.read_json(VENDOR, operation), operation)

    async def cancel(self, order: Order | None, state: PairState) -> Observation:
        """``PUT /orders/{id}/cancel`` ("Cancel": the order as Smake holds it now, `cancelled`).
        "Depending on the cancellation setting it may be that an order can no longer be
        canceled. In this case an API exception is thrown": a 4xx, a VendorRejected with
        Smake's message."""
        operation = "cancel_order"
        ref = state.vendor_order_ref
        if ref is None or path_safe_ref(ref) is None:
            raise VendorRejected(VENDOR, operation, "no usable Smake id recorded for the pair")
        answer = await self._http.request(
            operation, "PUT", f"/orders/{quote(ref, safe='')}/cancel", headers=self._headers)
        if not answer.is_success:
            raise smake_error(operation, answer)
        return observation_from_order(answer.read_json(VENDOR, operation), operation)

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
            listing = answer.read_json(VENDOR, operation)
            data = listing.get("data") if isinstance(listing, dict) else None
            if not isinstance(data, list):
                raise VendorUnavailable(VENDOR, operation, "order list answer has no data array")
            for order in data:
                ref = order_id_of(order) if isinstance(order, dict) else None
                if ref in asked and ref not in found:
                    try:
                        found[ref] = observation_from_order(order, operation)
                    except VendorError:
                        continue  # unreadable on its own: its own read will say why
            if len(found) == len(asked) or not has_next_page(listing):
                break
        return found

    async def _find(self, order_id: str, *, again: bool = False,
                    since: float | None = None) -> Observation | None:
        """The order Smake holds for our id, reading every page of the partial-match filter;
        None when no order carries our id exactly. For a pair submitted `again` (`orderflow
        retry` after its production failed), an order that failed or was cancelled does not
        count: it gets a new Smake order, never the failed one again. A first submission
        adopts whatever Smake holds, failed too: its create's answer may only have been
        lost, and a second production of one order is never made on a guess.

        `since` (the pair's creation) bounds the look-up with ``filter[created_at_min]``, a
        day earlier for clocks that disagree: a short id is part of many others' ids, and the
        partial-match filter would otherwise page through all of them."""
        params = {"filter[external_identifier]": order_id, "per_page": str(LOOKUP_PAGE_SIZE)}
        if since is not None:
            params["filter[created_at_min]"] = datetime.fromtimestamp(
                since - 86_400, UTC).date().isoformat()
        operation = "find_order"
        matches: list[tuple[str, dict[str, Any]]] = []
        for page in range(1, LOOKUP_MAX_PAGES + 1):
            answer = await self._http.request(
                operation, "GET", "/orders", params={**params, "page": str(page)},
                headers=self._headers,
            )
            if answer.status != 200:
                raise smake_error(operation, answer)
            listing = answer.read_json(VENDOR, operation)
            matches.extend(match for match in exact_matches(listing, order_id, operation)
                           if not again
                           or str(match[1].get("state", "")).lower() not in ENDED_UNMADE)
            if not has_next_page(listing):
                break
        else:
            raise VendorUnavailable(
                VENDOR, operation,
                f"the lookup of {order_id!r} still had pages after {LOOKUP_MAX_PAGES} of "
                f"{LOOKUP_PAGE_SIZE}: not creating on a guess")
        if not matches:
            return None
        matches.sort(key=lambda match: id_sort_key(match[0]))
        ids = [found for found, _ in matches]
        if len(ids) > 1:
            # Smake does not enforce uniqueness; the duplicates need a person's attention.
            log.warning("smake_duplicate_orders", order_id=order_id, adopted=ids[0],
                        smake_order_ids=ids)
        else:
            log.info("smake_order_adopted", order_id=order_id, adopted=ids[0])
        return observation_from_order(matches[0][1], operation)

    async def _artwork_of(self, order: Order, state: PairState) -> dict[str, Artwork]:
        """Each artwork line's design as Smake needs it: the print-ready file uploaded (once:
        a media id recorded earlier is reused) and the design's size."""
        lines = artwork_lines(order) if self._artwork is not None else []
        found: dict[str, Artwork] = {}
        for line in lines:
            assert self._artwork is not None
            media_id = state.media.get(line.line_id)
            if media_id is None:
                media_id = await self._upload(line)
                await state.remember_media(line.line_id, media_id)
            size = await self._artwork.design_size_mm(line) or self._settings.artwork_size_mm
            found[line.line_id] = Artwork(media_id, *size)
        return found

    async def _upload(self, line: OrderLine) -> int:
        """The line's print-ready file, streamed from where Zakeke keeps it into ``POST
        /media`` (raw bytes, never held whole): Smake's media id for it."""
        assert self._artwork is not None
        operation, file_format = "upload_media", self._settings.artwork_format
        async with self._artwork.print_file(line, file_format) as file:
            headers = {**self._headers, "Content-Type": CONTENT_TYPES[file_format]}
            if file.size is not None:
                headers["Content-Length"] = str(file.size)
            answer = await self._http.request(operation, "POST", "/media", body=file.chunks(),
                                              headers=headers, timeout_s=UPLOAD_TIMEOUT_S)
        if not answer.is_success:
            raise smake_error(operation, answer)
        try:
            media_id = media_id_from(answer.read_json(VENDOR, operation))
        except ValueError as exc:
            raise VendorUnavailable(VENDOR, operation, str(exc), answer.status) from exc
        log.info("artwork uploaded", line_id=line.line_id, media_id=media_id, bytes=file.read)
        return media_id

    async def _create(self, order: Order, state: PairState) -> Observation:
        operation = "create_order"
        artwork = await self._artwork_of(order, state)
        body = build_or_refuse(VENDOR, operation,
                               lambda: smake_create_body(order, self._settings, artwork))
        await state.intend_to_create()
        answer = await self._http.request(
            operation, "POST", "/orders", json_body=body, headers=self._headers,
        )
        if not answer.is_success:
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
