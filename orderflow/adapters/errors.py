"""The one error taxonomy of the adapters. Errors carry their behaviour as flags
(`retriable`, `vendor_failing`, `throttles`, `nothing_created`) that the engine decides on
in one place (`transitions.after_call`); each adapter translates a vendor's answers into
these at one choke point of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from orderflow.config.settings import VendorSettings
from orderflow.contracts.events import Vendor

T = TypeVar("T")

class VendorError(Exception):
    """Root of everything an adapter raises. `retriable` says whether trying later may help;
    `vendor_failing` whether the vendor itself is failing (the engine then holds the whole
    vendor back after several in a row), rather than one order waiting for something."""

    retriable = False
    vendor_failing = False
    # The vendor asks us to slow down (the whole vendor waits `retry_after` seconds).
    throttles = False
    retry_after: float | None = None

    def __init__(self, vendor: Vendor, operation: str, message: str, status: int | None = None):
        super().__init__(f"{vendor} {operation}: {message}")
        self.vendor = vendor
        self.operation = operation
        self.message = message
        self.status = status
        # True when the request is known never to have acted (the connection never opened,
        # or the vendor throttled it): a create that failed so leaves no doubt behind.
        self.nothing_created = False


class VendorRejected(VendorError):
    """A 4xx refusal of our request, or an order the vendor cannot take: permanent.
    `message` is the vendor's own words (or ours, when we refuse before calling)."""


class TransientVendorError(VendorError):
    """Trying again later may succeed. `retry_after` is the vendor's own hint in seconds."""

    retriable = True
    vendor_failing = True

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


class AnswerUnreadable(VendorUnavailable):
    """The answer's status arrived but its body could not be read (too large, corrupt, an
    encoding we did not ask for). `status` says what the vendor meant: a 2xx here still
    means the vendor acted."""


class NotProvenAbsent(TransientVendorError):
    """A create whose answer was lost may have taken effect, and the vendor's reads may still
    lag behind it: the order is not created again until it has stayed absent long enough.
    The vendor is answering normally; only this order waits."""

    vendor_failing = False


class VendorThrottled(TransientVendorError):
    """429: the vendor asks us to slow down, usually with Retry-After."""

    throttles = True


class VendorAuthFailed(TransientVendorError):
    """401/403 even after fresh credentials: an outage of the account, not of the order."""

def require_credentials(vendor: Vendor, settings: VendorSettings) -> None:
    """Refuse to start an adapter whose settings lack credentials, naming each one missing."""
    missing = settings.missing_credentials()
    if missing:
        raise ValueError(f"{str(vendor).capitalize()} needs {', '.join(missing)}")


def build_or_refuse(vendor: Vendor, operation: str, build: Callable[[], T]) -> T:
    """Build a request from an order, or refuse the order when the vendor's format cannot
    carry it (a `placed_at` of year 1 with an offset has no UTC time, say): a permanent
    `VendorRejected` with the reason, never a retry that could only fail again."""
    try:
        return build()
    except (ValueError, ArithmeticError, TypeError) as exc:
        raise VendorRejected(
            vendor, operation,
            f"the order cannot be written in {str(vendor).capitalize()}'s format: {exc}",
        ) from exc
