"""ZakekeAdapter: the I/O. Register an order (asking first after an intent, waiting out
Zakeke's read lag), then follow its print-ready files."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import structlog

from orderflow.adapters.artwork import MAX_ARTWORK_BYTES
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
    Download,
    HttpAnswer,
    RequestObserver,
    VendorHttp,
    basic_authorization,
)
from orderflow.adapters.outcomes import LinePrintFiles, Observation, PairState, PrintFileRef
from orderflow.adapters.zakeke.answers import (
    GrantedToken,
    design_size_from,
    design_unit_price_from,
    file_url_from,
    is_auth_refusal,
    needs_modification_id,
    order_ref_from,
    parse_token_answer,
    summarize_zakeke_order,
    zakeke_error,
    zip_url_from,
)
from orderflow.adapters.zakeke.request import (
    PRINT_FILES_IN_PROCESS,
    PRINT_FILES_READY,
    VENDOR,
    TokenCode,
    build_register_body,
    design_id_of,
    design_items_path,
    design_path,
    dumps_exact_json,
    lines_needing_design_price,
    modification_id_of,
    order_path,
    print_file_path,
    print_files_zip_path,
    registration_code,
    zakeke_lines,
    zakeke_order_date,
)
from orderflow.adapters.zakeke.tokens import S2STokenCache
from orderflow.config.settings import ZakekeSettings
from orderflow.contracts.events import Order, OrderLine, Vendor, VendorStatus

log = structlog.get_logger(__name__)


# Reading a print-ready file of tens of MB takes longer than an API call.
FILE_TIMEOUT_S = 300.0

# The formats `files[]` lists when they are asked for one by one: the two Smake takes as
# artwork (contract, "One order, one flow"); the zip holds every format Zakeke rendered.
LISTED_FILE_FORMATS = ("PDF", "PNG")


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
        http: VendorHttp | None = None,
    ) -> None:
        self._settings = settings
        # Epoch time, the clock of the engine's `PairState.intent_at`.
        self._wall_clock = wall_clock
        self._http = http or VendorHttp.for_vendor(VENDOR, settings, observer,
                                                   json_serialize=dumps_exact_json)
        self._tokens = S2STokenCache(
            self._request_token, max_codes=settings.token_cache_size, clock=clock
        )
        # Print-ready files are read from Zakeke's own host and the ones the settings add.
        self._file_hosts = frozenset({urlsplit(settings.base_url).hostname or "",
                                      *settings.file_hosts})

    async def start(self) -> None:
        require_credentials(VENDOR, self._settings)
        await self._http.start()

    async def stop(self) -> None:
        await self._tokens.close()
        await self._http.stop()

    async def verify_credentials(self) -> str:
        """One harmless authenticated call (`orderflow check`): an S2S token is granted.
        Raises VendorError when it is not."""
        await self._tokens.get(None)
        return "an S2S token was granted"

    # ------------------------------------------------------------------ engine calls

    async def submit(self, order: Order, state: PairState) -> Observation:
        if not zakeke_lines(order):
            raise VendorRejected(
                VENDOR, "register_order", "the order has no line customized with Zakeke"
            )
        # Refused before any call when Zakeke's format cannot carry the order at all.
        build_or_refuse(VENDOR, "register_order", lambda: zakeke_order_date(order))
        base = self._settings.base_currency
        if base is not None and order.currency != base:
            # Zakeke takes prices in the account's currency only: no conversion here.
            raise VendorRejected(
                VENDOR, "register_order",
                f"the order is in {order.currency}, the Zakeke account's prices in {base} "
                f"(ORDERFLOW_ZAKEKE__BASE_CURRENCY): Zakeke takes prices in that currency only")
        if state.intent_at is not None or state.ask_first:
            # A registration may have happened (its answer lost, its sender gone, or
            # another copy of the order registered it).
            existing = await self._get_order(order)
            if existing is not None:
                # Registered before: never post twice.
                observation = await self._observe(order, existing, state.vendor_order_ref)
                log.info("zakeke_order_adopted", order_id=order.order_id,
                         vendor_order_ref=observation.vendor_order_ref)
                return observation
            waited = (float("inf") if state.intent_at is None
                      else self._wall_clock() - state.intent_at)
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
        if not answer.is_success:
            raise zakeke_error("register_order", answer)
        return await self._read_back(order)

    def polling_view(self, order: Order) -> Order | None:
        """The order's id and date, its customer's e-mail and its Zakeke lines: what reading
        the order back and announcing print files need."""
        if not zakeke_lines(order):
            return order  # not one of ours to follow (submit refuses it): kept as it is
        view = order.model_dump(mode="json", include={"order_id", "placed_at", "currency",
                                                      "total", "session_id"}, exclude_none=True)
        view["customer"] = {"email": order.customer.email}
        view["lines"] = [line.model_dump(mode="json", exclude={"metadata", "name"},
                                         exclude_none=True) for line in zakeke_lines(order)]
        return Order.model_validate(view)

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        if order is None:
            raise VendorUnavailable(VENDOR, "get_order", "the pair holds no order to read back")
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
        try:
            for entry in summary.lines:
                files = await self._line_files(entry.line, entry.files)
                if files is None:
                    return Observation(VendorStatus.SUBMITTED, ref, PRINT_FILES_IN_PROCESS)
                print_files.append(files)
        except VendorRejected as exc:
            if not needs_modification_id(exc):
                raise
            # The design has one file per name-and-number (or variant) and our line names
            # none: no poll will ever get its files, so waiting out the deadline helps no one.
            return Observation(
                VendorStatus.REJECTED, ref, summary.vendor_state,
                reason=f"Zakeke needs the line's modification_id to give its print-ready "
                       f"files: {exc.message}")
        return Observation(
            VendorStatus.COMPLETED, ref, PRINT_FILES_READY, print_files=tuple(print_files)
        )

    async def _line_files(self, line: OrderLine, listed: LinePrintFiles | None
                          ) -> LinePrintFiles | None:
        """The print files of a READY design line, or None while they are not rendered yet.

        The order's item gives them for a plain design line. A names-and-numbers line (one
        with a modification id) is read from the designs API, which the page documents per
        modification (`outputfiles/zip/{modificationID}`, `outputfiles/{format}
        ?modificationID=`); so is a line whose item gives no zip or no files."""
        modification_id = modification_id_of(line)
        zip_url = listed.zip_url if listed is not None and modification_id is None else None
        if zip_url is None:
            zip_url = await self._print_files_zip(line)
            if zip_url is None:
                return None
        files = listed.files if listed is not None and modification_id is None else ()
        if not files:
            files = await self._files_by_format(line)
        design_id = design_id_of(line)
        assert design_id is not None
        return LinePrintFiles(line_id=line.line_id, design_id=design_id,
                              modification_id=modification_id, zip_url=zip_url, files=files)

    async def _files_by_format(self, line: OrderLine) -> tuple[PrintFileRef, ...]:
        """The line's file in each format a printer takes (`outputfiles/{format}`); a format
        Zakeke did not render (404) is left out."""
        files: list[PrintFileRef] = []
        modification_id = modification_id_of(line)
        for file_format in LISTED_FILE_FORMATS:
            answer = await self._authorized(
                "get_print_file", "GET", print_file_path(line, file_format), code=None,
                params={"modificationID": modification_id} if modification_id else None)
            if answer.status == 404:
                continue
            if not answer.is_success:
                raise zakeke_error("get_print_file", answer)
            try:
                url = file_url_from(answer.read_json(VENDOR, "get_print_file"))
            except ValueError as exc:
                raise VendorUnavailable(VENDOR, "get_print_file", str(exc), answer.status) from exc
            files.append(PrintFileRef(format=file_format, url=url))
        return tuple(files)

    async def _get_order(self, order: Order) -> dict[str, Any] | None:
        """Zakeke's order for our code, or None when Zakeke does not know it (yet)."""
        answer = await self._authorized("get_order", "GET", order_path(order), code=None)
        if answer.status == 404:
            return None
        if not answer.is_success:
            raise zakeke_error("get_order", answer)
        data = answer.read_json(VENDOR, "get_order", exact_decimals=True)
        if not isinstance(data, dict):
            # Only a 404 may mean "unknown": a 200 we cannot read must never lead to a post.
            raise VendorUnavailable(
                VENDOR, "get_order", "order answer is not a JSON object", answer.status
            )
        return data

    async def _design_unit_prices(self, order: Order) -> dict[str, Decimal]:
        prices: dict[str, Decimal] = {}
        for line in lines_needing_design_price(order):
            modification_id = modification_id_of(line)
            params = {"modificationID": modification_id} if modification_id else None
            answer = await self._authorized(
                "get_design", "GET", design_path(line), code=None, params=params
            )
            if not answer.is_success:
                # 404: the order names a design Zakeke does not have, a permanent refusal.
                raise zakeke_error("get_design", answer)
            design = answer.read_json(VENDOR, "get_design", exact_decimals=True)
            try:
                prices[line.line_id] = design_unit_price_from(design, line.unit_price)
            except ValueError as exc:
                raise VendorUnavailable(VENDOR, "get_design", str(exc), answer.status) from exc
        return prices

    async def _print_files_zip(self, line: OrderLine) -> str | None:
        answer = await self._authorized(
            "get_print_files", "GET", print_files_zip_path(line), code=None
        )
        if answer.status == 404:
            return None
        if not answer.is_success:
            raise zakeke_error("get_print_files", answer)
        try:
            return zip_url_from(answer.read_json(VENDOR, "get_print_files", exact_decimals=True))
        except ValueError as exc:
            raise VendorUnavailable(VENDOR, "get_print_files", str(exc), answer.status) from exc

    # ------------------------------------------------------------------ the artwork (ArtworkSource)

    @contextlib.asynccontextmanager
    async def print_file(self, line: OrderLine, file_format: str) -> AsyncIterator[Download]:
        """The line's print-ready file in `file_format`, from the URL Zakeke gives for it
        (`/v1/designs/{id}/outputfiles/{format}`, with `?modificationID=`), read from that
        URL only if its host is Zakeke's or one of ORDERFLOW_ZAKEKE__FILE_HOSTS."""
        operation = "get_print_file"
        modification_id = modification_id_of(line)
        answer = await self._authorized(
            operation, "GET", print_file_path(line, file_format), code=None,
            params={"modificationID": modification_id} if modification_id else None)
        if answer.status == 404:
            raise VendorUnavailable(VENDOR, operation,
                                    f"no {file_format} print-ready file yet: {answer.message()}", 404)
        if not answer.is_success:
            raise zakeke_error(operation, answer)
        try:
            url = file_url_from(answer.read_json(VENDOR, operation))
        except ValueError as exc:
            raise VendorUnavailable(VENDOR, operation, str(exc), answer.status) from exc
        host = urlsplit(url).hostname or ""
        if host not in self._file_hosts:
            raise VendorRejected(
                VENDOR, operation,
                f"print-ready file on {host!r}, not a host files may be read from (the host of "
                f"ORDERFLOW_ZAKEKE__BASE_URL or one of ORDERFLOW_ZAKEKE__FILE_HOSTS)")
        async with self._http.download(operation, url, max_bytes=MAX_ARTWORK_BYTES,
                                       timeout_s=FILE_TIMEOUT_S) as download:
            yield download

    async def design_size_mm(self, line: OrderLine) -> tuple[int, int] | None:
        """The bounding box of the design's items, in mm (`/v1/designs/{id}/items`: their
        coordinates and dimensions); None when Zakeke gives none."""
        answer = await self._authorized("get_design_items", "GET", design_items_path(line),
                                        code=None)
        if not answer.is_success:
            return None
        try:
            return design_size_from(answer.read_json(VENDOR, "get_design_items"))
        except VendorError:
            return None

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
        for _ in range(2):  # the token in hand, then a fresh one
            token = await self._tokens.get(code)
            answer = await self._http.request(
                operation, method, path, json_body=json_body, params=params,
                headers={"Authorization": f"Bearer {token.value}"},
            )
            if not is_auth_refusal(answer):
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
        if not answer.is_success:
            raise zakeke_error("token", answer)
        try:
            return parse_token_answer(answer.read_json(VENDOR, "token", exact_decimals=True))
        except ValueError as exc:
            raise VendorUnavailable(VENDOR, "token", str(exc), answer.status) from exc

