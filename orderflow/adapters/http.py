"""The HTTP session every adapter talks through: one vendor's base URL, a timeout per request,
answers read within a size limit and decompressed by us, headers read without regard to
case, transport failures translated into the error taxonomy, and every request reported to
an observer (the engine's metrics).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from orderflow.adapters.errors import (
    AnswerUnreadable,
    VendorAuthFailed,
    VendorError,
    VendorRejected,
    VendorThrottled,
    VendorUnavailable,
)
from orderflow.config.settings import VendorSettings
from orderflow.contracts.events import Vendor


class RequestObserver(Protocol):
    """Receives one call per vendor request (the engine's metrics implement it)."""

    def observe_request(
        self, vendor: str, operation: str, outcome: str, seconds: float
    ) -> None: ...


class NullObserver:
    def observe_request(self, vendor: str, operation: str, outcome: str, seconds: float) -> None:
        return None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A vendor's answer, read whole (and bounded, see VendorHttp). Header names are looked
    up without regard to case, as HTTP wants: `Retry-After` and `retry-after` are one header,
    whatever mapping the answer was built from."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, CIMultiDictProxy):
            object.__setattr__(self, "headers", CIMultiDictProxy(CIMultiDict(self.headers)))

    def json(self, **options: Any) -> Any:
        """The body as JSON (None when empty). Raises ValueError for anything unreadable,
        nesting too deep for the reader included (a RecursionError otherwise)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body, **options)
        except RecursionError:
            raise ValueError("JSON nested deeper than the reader's recursion limit") from None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def read_json(self, vendor: Vendor, operation: str, *, exact_decimals: bool = False) -> Any:
        """A success body as JSON (`exact_decimals`: JSON decimals as exact `Decimal`s). A
        body that cannot be read, or none, is an outage of the vendor
        (`VendorUnavailable`), never a reason to reject the order, and never an error of
        another kind (a RecursionError would be an adapter bug)."""
        try:
            if not self.body:
                raise ValueError("empty body")
            return self.json(parse_float=Decimal) if exact_decimals else self.json()
        except ValueError as exc:
            raise VendorUnavailable(
                vendor, operation, f"unreadable answer (HTTP {self.status}): {exc}"[:300],
                self.status) from exc

    def message(self) -> str:
        """The vendor's explanation, from a JSON `message`/`error`/`errors` or the raw text."""
        try:
            data = self.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            parts = [str(data[k])[:1000] for k in ("message", "error", "title", "detail")
                     if data.get(k)]
            errors = data.get("errors")
            if errors:
                parts.append(_shown_json(errors))
            if parts:
                return "; ".join(parts)[:1000]
        if isinstance(data, str) and data:
            return data[:1000]
        text = self.body.decode("utf-8", "replace").strip()
        return text[:1000] or f"HTTP {self.status}"


def _shown_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)[:1000]
    except (ValueError, TypeError, RecursionError):
        return str(type(value).__name__)


def outcome_label(status: int) -> str:
    """The `outcome` label of orderflow_vendor_requests_total for an HTTP status."""
    if status < 300:
        return "ok"
    if status == 404:
        return "not_found"
    if status == 429:
        return "throttled"
    if status in (401, 403):
        return "auth_error"
    if status < 500:
        return "client_error"
    return "server_error"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)



def path_safe_ref(value: Any, max_length: int = 128) -> str | None:
    """A vendor's id for an order, as text, when it can go into a URL path as one segment;
    None otherwise (missing, not a string or integer, too long, `.`/`..`, control
    characters): such an answer is unreadable, and its id is never requested."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value)
    if not text or len(text) > max_length or text in (".", ".."):
        return None
    if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in text):
        return None
    return text


def basic_authorization(login: str, password: str) -> str:
    """The HTTP Basic `Authorization` value. Built here because aiohttp deprecates BasicAuth."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def default_error_for(vendor: Vendor, operation: str, answer: HttpAnswer) -> VendorError:
    """The shared reading of a non-success status; adapters call it from their own
    translation function after handling the codes that mean something special to them."""
    status = answer.status
    if status == 429:
        throttled = VendorThrottled(
            vendor, operation, answer.message(), status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
        )
        throttled.nothing_created = True  # refused before anything was done
        return throttled
    if status >= 500:
        return VendorUnavailable(
            vendor, operation, answer.message(), status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
        )
    if status in (401, 403):
        return VendorAuthFailed(vendor, operation, answer.message(), status)
    if 400 <= status < 500:
        return VendorRejected(vendor, operation, answer.message(), status)
    return VendorUnavailable(vendor, operation, f"unexpected HTTP {status}", status)


class SentRequest(NamedTuple):
    """A request as it leaves VendorHttp: what a `MockTransport` handler is given."""

    operation: str
    method: str
    path: str  # below the base URL
    json_body: Any
    params: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    form: Mapping[str, str] | None
    body: Any = None  # raw bytes or an async iterable of chunks (an upload), else None


class Download:
    """A file being read: its content type and size as its answer declares them, and its
    bytes, chunk by chunk (`chunks`, once), never more than `max_bytes` in all."""

    def __init__(self, vendor: Vendor, operation: str, content_type: str | None,
                 size: int | None, source: AsyncIterable[bytes], max_bytes: int) -> None:
        self.content_type = content_type
        self.size = size
        self.read = 0
        self._vendor, self._operation = vendor, operation
        self._source = source
        self._max_bytes = max_bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            self.read += len(chunk)
            if self.read > self._max_bytes:
                raise VendorUnavailable(self._vendor, self._operation,
                                        f"file longer than the {self._max_bytes} bytes allowed")
            yield chunk


async def _chunks_of(body: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


class MockTransport:
    """Answers VendorHttp's requests with a function instead of the network, in the manner of
    httpx's MockTransport: the VendorHttp holding it is the real one (its observer, its one
    translation of failures), only the wire is replaced. Every request is kept, in order.
    The one fake of the HTTP session; adapters take it as `http=VendorHttp(...,
    transport=MockTransport(handler))`."""

    def __init__(self, handler: Callable[[SentRequest], HttpAnswer]) -> None:
        self._handler = handler
        self.requests: list[SentRequest] = []

    @classmethod
    def scripted(cls, script: Mapping[tuple[str, str], list[HttpAnswer]]) -> MockTransport:
        """Answers by (method, path), each list answered in order (a request the script
        does not expect fails the test with KeyError or IndexError)."""
        queues = {key: list(answers) for key, answers in script.items()}
        return cls(lambda request: queues[(request.method, request.path)].pop(0))

    async def __call__(self, request: SentRequest) -> HttpAnswer:
        self.requests.append(request)
        return self._handler(request)


class VendorHttp:
    """An aiohttp session bound to one vendor's base URL, with a timeout per request, and
    every request reported to the observer. Transport failures come out as
    `VendorUnavailable`; HTTP statuses are returned for the adapter to read. With a
    `transport` (tests), requests go to it instead of the network."""

    def __init__(
        self,
        vendor: Vendor,
        base_url: str,
        *,
        timeout_s: float,
        max_connections: int,
        observer: RequestObserver | None = None,
        default_headers: Mapping[str, str] | None = None,
        json_serialize: Callable[[Any], str] = json.dumps,
        max_answer_bytes: int = 1_048_576,
        transport: MockTransport | None = None,
    ) -> None:
        self.vendor = vendor
        self._transport = transport
        self._max_answer_bytes = max_answer_bytes
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._observer = observer or NullObserver()
        self._default_headers = dict(default_headers or {})
        # How `json_body` becomes text: an adapter whose vendor wants money as exact JSON
        # numbers passes an encoder that writes Decimals verbatim.
        self._json_serialize = json_serialize
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_vendor(
        cls,
        vendor: Vendor,
        settings: VendorSettings,
        observer: RequestObserver | None = None,
        *,
        json_serialize: Callable[[Any], str] = json.dumps,
        transport: MockTransport | None = None,
    ) -> VendorHttp:
        """The session a vendor's settings describe: its base URL, timeout and connection cap."""
        return cls(vendor, settings.base_url, timeout_s=settings.request_timeout_s,
                   max_connections=settings.max_concurrency, observer=observer,
                   json_serialize=json_serialize, max_answer_bytes=settings.max_answer_bytes,
                   transport=transport)

    async def start(self) -> None:
        if self._session is None and self._transport is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"Accept": "application/json", "User-Agent": "orderflow/0.1",
                         "Accept-Encoding": "gzip, deflate", **self._default_headers},
                json_serialize=self._json_serialize,
                # Bodies are decompressed by `_read_body`, which stops at the size limit:
                # the client library's own decompression has no such bound.
                auto_decompress=False,
            )

    async def stop(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
        timeout_s: float | None = None,
    ) -> HttpAnswer:
        """One request below the base URL. `body`: raw bytes, or chunks streamed as they
        come (an upload is never held whole); `timeout_s`: in place of the vendor's request
        timeout (an upload of tens of MB takes longer than a read)."""
        if self._transport is not None:
            return await self._through_transport(self._transport, SentRequest(
                operation, method, path, json_body, params, headers, form, body))
        if self._session is None:
            raise RuntimeError(f"{self.vendor} HTTP session is not started")
        url = self.base_url + path
        started = time.perf_counter()
        outcome = "connection_error"
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.request(
                method, url, json=json_body, data=form if body is None else body, params=params,
                headers=headers, allow_redirects=False, timeout=timeout,
            ) as response:
                outcome = "unreadable"
                body = await self._read_body(response, operation)
                answer = HttpAnswer(response.status, CIMultiDictProxy(CIMultiDict(response.headers)),
                                    body)
                outcome = outcome_label(response.status)
                return answer
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except TimeoutError as exc:
            outcome = "timeout"
            raise VendorUnavailable(self.vendor, operation, "request timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            error = VendorUnavailable(self.vendor, operation, f"{type(exc).__name__}: {exc}")
            error.nothing_created = True  # the request never left
            raise error from exc
        except aiohttp.ClientError as exc:
            raise VendorUnavailable(self.vendor, operation, f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            # The client refuses to write a request it finds unsafe (a control character in
            # a header built from something a vendor said). Nothing was sent.
            outcome = "not_sent"
            raise VendorUnavailable(self.vendor, operation, f"request not sent: {exc}") from exc
        finally:
            self._observer.observe_request(
                str(self.vendor), operation, outcome, time.perf_counter() - started
            )

    @contextlib.asynccontextmanager
    async def download(self, operation: str, url: str, *, max_bytes: int,
                       timeout_s: float) -> AsyncIterator[Download]:
        """A file at an absolute URL, read as it arrives (never held whole): a 2xx answer as
        a `Download`; anything else, or a failure on the way, VendorUnavailable (a file not
        there yet is there later). At most `max_bytes`, else VendorUnavailable too."""
        if self._transport is not None:
            answer = await self._through_transport(self._transport, SentRequest(
                operation, "GET", url, None, None, None, None))
            if not answer.is_success:
                raise VendorUnavailable(self.vendor, operation,
                                        f"file not read: HTTP {answer.status}", answer.status)
            yield Download(self.vendor, operation, answer.headers.get("Content-Type"),
                           len(answer.body), _chunks_of(answer.body), max_bytes)
            return
        if self._session is None:
            raise RuntimeError(f"{self.vendor} HTTP session is not started")
        started, outcome = time.perf_counter(), "connection_error"
        try:
            async with self._session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout_s),
                # The file as it is: decompressing would make its bytes another file's.
                headers={"Accept": "*/*", "Accept-Encoding": "identity"},
            ) as response:
                outcome = outcome_label(response.status)
                if not 200 <= response.status < 300:
                    raise VendorUnavailable(self.vendor, operation,
                                            f"file not read: HTTP {response.status}",
                                            response.status)
                if response.content_length is not None and response.content_length > max_bytes:
                    raise VendorUnavailable(
                        self.vendor, operation,
                        f"file of {response.content_length} bytes, over the {max_bytes} allowed")
                yield Download(self.vendor, operation, response.headers.get("Content-Type"),
                               response.content_length,
                               response.content.iter_chunked(256 * 1024), max_bytes)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except TimeoutError as exc:
            outcome = "timeout"
            raise VendorUnavailable(self.vendor, operation, "file read timed out") from exc
        except aiohttp.ClientError as exc:
            raise VendorUnavailable(self.vendor, operation, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._observer.observe_request(
                str(self.vendor), operation, outcome, time.perf_counter() - started)

    async def _through_transport(self, transport: MockTransport, request: SentRequest) -> HttpAnswer:
        started, outcome = time.perf_counter(), "connection_error"
        try:
            answer = await transport(request)
            outcome = outcome_label(answer.status)
            return answer
        finally:
            self._observer.observe_request(
                str(self.vendor), request.operation, outcome, time.perf_counter() - started)

    async def _read_body(self, response: aiohttp.ClientResponse, operation: str) -> bytes:
        """The body, decompressed, or VendorUnavailable when it is larger than the limit
        (checked as it arrives: a larger answer is never held whole), in an encoding we did
        not ask for, or corrupt."""
        limit = self._max_answer_bytes
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        decoder: Any = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip framing
        elif encoding not in ("", "identity"):
            raise AnswerUnreadable(self.vendor, operation,
                                    f"answer in an encoding we did not ask for: {encoding[:40]}",
                                    response.status)
        declared = response.content_length
        if decoder is None and declared is not None and declared > limit:
            raise self._too_large(operation, response.status, f"declares {declared} bytes")
        chunks: list[bytes] = []
        size = raw = 0
        try:
            async for chunk in response.content.iter_chunked(64 * 1024):
                raw += len(chunk)
                if decoder is not None:
                    data = decoder.decompress(chunk, limit + 1 - size)
                    if decoder.unconsumed_tail:
                        raise self._too_large(operation, response.status, "decompresses to more")
                else:
                    data = chunk
                size += len(data)
                if size > limit or raw > limit + 65_536:
                    raise self._too_large(operation, response.status, "is longer")
                chunks.append(data)
            if decoder is not None and raw:
                data = decoder.flush()
                size += len(data)
                if size > limit:
                    raise self._too_large(operation, response.status, "decompresses to more")
                if not decoder.eof:
                    raise zlib.error("the compressed stream ends early")
                chunks.append(data)
        except zlib.error as exc:
            raise AnswerUnreadable(self.vendor, operation,
                                    f"answer could not be decompressed ({encoding}): {exc}",
                                    response.status) from exc
        return b"".join(chunks)

    def _too_large(self, operation: str, status: int, how: str) -> AnswerUnreadable:
        return AnswerUnreadable(
            self.vendor, operation,
            f"answer not read: it {how} than the {self._max_answer_bytes} bytes allowed "
            f"(ORDERFLOW_{str(self.vendor).upper()}__MAX_ANSWER_BYTES)", status)
