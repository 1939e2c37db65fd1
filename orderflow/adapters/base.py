"""What every vendor adapter shares: the protocol the engine calls, the outcome types it
returns, the one error taxonomy, and an HTTP session with auth, timeouts and request metrics.

Adapters never import the engine. They take an order and the pair's last known state, talk
to the vendor, and return an `Observation` (what the vendor says now) or raise a
`VendorError`. Deciding which events that means is the engine's job.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

import aiohttp

from orderflow.config.settings import VendorSettings
from orderflow.contracts.events import Order, Vendor, VendorStatus

# ----------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class PrintFileRef:
    format: str
    url: str


@dataclass(frozen=True, slots=True)
class LinePrintFiles:
    """The print-ready files Zakeke produced for one design line of the order."""

    line_id: str
    design_id: str
    modification_id: str | None
    zip_url: str | None
    files: tuple[PrintFileRef, ...]


@dataclass(frozen=True, slots=True)
class Observation:
    """What a vendor says about a pair right now, already mapped to the contract's words."""

    status: VendorStatus
    vendor_order_ref: str | None = None
    vendor_state: str | None = None
    reason: str | None = None
    tracking_numbers: tuple[str, ...] = ()
    print_files: tuple[LinePrintFiles, ...] = ()


@dataclass(frozen=True, slots=True)
class PairState:
    """What the engine remembers of a pair between calls (from the tracking topic)."""

    vendor_order_ref: str | None = None
    vendor_state: str | None = None


class VendorAdapter(Protocol):
    """One vendor. `submit` creates the vendor's order (after asking whether it already
    exists, where the vendor can be asked); `poll` reads its progress."""

    vendor: Vendor

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, order: Order, state: PairState) -> Observation: ...

    async def poll(self, order: Order, state: PairState) -> Observation: ...


# ----------------------------------------------------------------------------- errors


class VendorError(Exception):
    """Root of everything an adapter raises. `retriable` says whether trying later may help."""

    retriable = False

    def __init__(self, vendor: Vendor, operation: str, message: str, status: int | None = None):
        super().__init__(f"{vendor} {operation}: {message}")
        self.vendor = vendor
        self.operation = operation
        self.message = message
        self.status = status


class VendorRejected(VendorError):
    """A 4xx refusal of our request, or an order the vendor cannot take: permanent.
    `message` is the vendor's own words (or ours, when we refuse before calling)."""


class TransientVendorError(VendorError):
    """Trying again later may succeed. `retry_after` is the vendor's own hint in seconds."""

    retriable = True

    def __init__(
        self,
        vendor: Vendor,
        operation: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(vendor, operation, message, status)
        self.retry_after = retry_after


class VendorUnavailable(TransientVendorError):
    """Connection refused or reset, timeout, 5xx, or an answer we cannot read."""


class VendorThrottled(TransientVendorError):
    """429: the vendor asks us to slow down, usually with Retry-After."""


class VendorAuthFailed(TransientVendorError):
    """401/403 even after fresh credentials: an outage of the account, not of the order."""


# ----------------------------------------------------------------------------- HTTP


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
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def message(self) -> str:
        """The vendor's explanation, from a JSON `message`/`error`/`errors` or the raw text."""
        try:
            data = self.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            parts = [str(data[k]) for k in ("message", "error", "title", "detail") if data.get(k)]
            errors = data.get("errors")
            if errors:
                parts.append(json.dumps(errors, ensure_ascii=False, sort_keys=True))
            if parts:
                return "; ".join(parts)[:1000]
        if isinstance(data, str) and data:
            return data[:1000]
        text = self.body.decode("utf-8", "replace").strip()
        return text[:1000] or f"HTTP {self.status}"


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


def require_credentials(vendor: Vendor, settings: VendorSettings) -> None:
    """Refuse to start an adapter whose settings lack credentials, naming each one missing."""
    missing = settings.missing_credentials()
    if missing:
        raise ValueError(f"{str(vendor).capitalize()} needs {', '.join(missing)}")


def basic_authorization(login: str, password: str) -> str:
    """The HTTP Basic `Authorization` value. Built here because aiohttp deprecates BasicAuth."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def default_error_for(vendor: Vendor, operation: str, answer: HttpAnswer) -> VendorError:
    """The shared reading of a non-success status; adapters call it from their own
    translation function after handling the codes that mean something special to them."""
    status = answer.status
    if status == 429:
        return VendorThrottled(
            vendor, operation, answer.message(), status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
        )
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


class VendorHttp:
    """An aiohttp session bound to one vendor's base URL, with a timeout per request, and
    every request reported to the observer. Transport failures come out as
    `VendorUnavailable`; HTTP statuses are returned for the adapter to read."""

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
    ) -> None:
        self.vendor = vendor
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
    ) -> VendorHttp:
        """The session a vendor's settings describe: its base URL, timeout and connection cap."""
        return cls(vendor, settings.base_url, timeout_s=settings.request_timeout_s,
                   max_connections=settings.max_concurrency, observer=observer,
                   json_serialize=json_serialize)

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"Accept": "application/json", "User-Agent": "orderflow/0.1",
                         **self._default_headers},
                json_serialize=self._json_serialize,
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
    ) -> HttpAnswer:
        if self._session is None:
            raise RuntimeError(f"{self.vendor} HTTP session is not started")
        url = self.base_url + path
        started = time.perf_counter()
        outcome = "connection_error"
        try:
            async with self._session.request(
                method, url, json=json_body, data=form, params=params, headers=headers,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                answer = HttpAnswer(response.status, dict(response.headers), body)
                outcome = outcome_label(response.status)
                return answer
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except TimeoutError as exc:
            outcome = "timeout"
            raise VendorUnavailable(self.vendor, operation, "request timed out") from exc
        except aiohttp.ClientError as exc:
            raise VendorUnavailable(self.vendor, operation, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._observer.observe_request(
                str(self.vendor), operation, outcome, time.perf_counter() - started
            )


__all__ = [
    "HttpAnswer",
    "LinePrintFiles",
    "NullObserver",
    "Observation",
    "PairState",
    "PrintFileRef",
    "RequestObserver",
    "TransientVendorError",
    "VendorAdapter",
    "VendorAuthFailed",
    "VendorError",
    "VendorHttp",
    "VendorRejected",
    "VendorThrottled",
    "VendorUnavailable",
    "basic_authorization",
    "default_error_for",
    "outcome_label",
    "parse_retry_after",
]
