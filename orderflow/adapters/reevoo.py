"""Reevoo (reviews): submit the customer order so Reevoo can ask for a review; 202 ends it.

Reevoo's Customer Orders API page and the facts from its other pages are the reference. Reevoo
has no endpoint to look a submission up and nothing says it drops a repeated ``order_ref``, so
effectively-once rests on one rule: after a 202 the order is done (``COMPLETED``, never sent
again); only a network error or a 5xx (transient errors) lets the engine send it again. A 202
whose body we cannot read is still a 202.

Decisions where the page leaves room (each one has a unit test):

- ``order_date`` is ``placed_at``'s calendar date in the offset the event carries (the date
  the checkout recorded), formatted dd-mm-yyyy. ``fulfilment_date`` is sent when the order
  was fulfilled before it was submitted (``ORDERFLOW_REEVOO__SUBMIT_ON=fulfilled``: the day
  its Smake pair completed, in the same offset); otherwise we do not know it, and
  ``order_date`` satisfies the either/or.
- ``language``/``locale`` come from the order's locale: ``en-GB`` (or ``en_gb``) gives
  ``en`` and ``en-GB``; a bare ``en`` gives the language only; anything else neither.
- ``customer_ref`` is spelled as in the attribute table (the page's example says
  ``cutomer_ref``). Null customer fields are left out.
- ``price`` is the line's ``unit_price`` (Reevoo items have no quantity) written with its
  own decimals and a comma: ``"12.00"`` -> ``"12,00"``, ``"10"`` -> ``"10"``. A negative
  price cannot be written with "just digits and a comma" and is left out (it is optional).
- ``metadata`` keys: "Field names can contain only [a-z0-9] characters" (the table). Its
  example's ``field_1`` has an underscore, but a key of ``[a-z0-9]`` only is right by both,
  so that is what is sent: a key is lower-cased, accents are dropped to ASCII and every other
  character goes (``"Gift Wrap!"`` -> ``giftwrap``, ``field_1`` -> ``field1``). A key that
  reduces to nothing is dropped; when two keys reduce to the same name the first one (in the
  event's order) keeps it and the later one is dropped, with a warning in the log.
- ``customer.country``: "Two letter code of the country as per ISO 3166-1", optional: sent in
  capitals when the order's country is two letters, left out otherwise (``United Kingdom``
  upper-cased was a 422 that refused the whole submission).
- 400 (``Invalid TRKREF supplied``) and 422 are ``VendorRejected`` with Reevoo's message, as
  the contract wants for a 4xx, even though a wrong TRKREF is our configuration rather than
  the order. 401 is ``VendorAuthFailed`` (Basic credentials cannot be refreshed). 403 means
  "the feature is not enabled for the organisation": no retry can change that for this
  order, so it is ``VendorRejected`` saying so. 404/405 mean the base URL is wrong:
  transient, since nothing was accepted.
- The 202 carries no state word: the observation has none (``vendor_state`` null).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import structlog

from orderflow.adapters.errors import (
    AnswerUnreadable,
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
from orderflow.adapters.outcomes import Observation, PairState
from orderflow.config.settings import ReevooSettings
from orderflow.contracts.events import Order, OrderLine, Vendor, VendorStatus

log = structlog.get_logger(__name__)

VENDOR = Vendor.REEVOO

# The vendor_state of an accepted submission (Reevoo's own answer has no state word).

# ----------------------------------------------------------------------------- request body


def reevoo_date(order: Order) -> str:
    """``order_date``: dd-mm-yyyy, the calendar date of ``placed_at`` in its own offset."""
    return _dd_mm_yyyy(order.placed_at)


def reevoo_fulfilment_date(order: Order, fulfilled_at: float) -> str:
    """``fulfilment_date``: dd-mm-yyyy, the day the order was fulfilled (epoch seconds), in
    the offset of ``placed_at`` (the shop's own calendar, as ``order_date``)."""
    return _dd_mm_yyyy(datetime.fromtimestamp(fulfilled_at, order.placed_at.tzinfo or UTC))


def _dd_mm_yyyy(moment: datetime) -> str:
    # Not strftime: its %Y writes year 1 as "1" on Linux, not the format's four digits.
    return f"{moment.day:02d}-{moment.month:02d}-{moment.year:04d}"


_LOCALE = re.compile(r"^([a-z]{2})(?:[-_](?:[a-z]{4}[-_])?([a-z]{2}))?$", re.IGNORECASE)


def reevoo_language_locale(locale: str | None) -> tuple[str | None, str | None]:
    """(``language``, ``locale``) from our locale: ISO 639-1 lower case, and language-COUNTRY
    with the country upper case. Unreadable locales give (None, None)."""
    if not locale:
        return None, None
    match = _LOCALE.match(locale.strip())
    if match is None:
        return None, None
    language = match.group(1).lower()
    country = match.group(2)
    return language, f"{language}-{country.upper()}" if country else None


def reevoo_price(amount: Decimal) -> str | None:
    """Reevoo's price: "just digits and a comma to separate the decimals". The decimals are
    the ones the event carries ("12.00" -> "12,00", "10" -> "10"); negative amounts have no
    such form and give None."""
    if not amount.is_finite() or (amount < 0):
        return None
    # abs() turns a "-0.00" into "0.00" and keeps the decimals.
    return format(abs(amount), "f").replace(".", ",")


_NOT_KEY_CHARACTERS = re.compile(r"[^a-z0-9]+")


def reevoo_metadata_key(key: str) -> str:
    """A metadata key reduced to ``[a-z0-9]`` (empty when nothing is left)."""
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    return _NOT_KEY_CHARACTERS.sub("", ascii_key.lower())


def reevoo_metadata(metadata: Mapping[str, str] | None, line_id: str = "") -> dict[str, str]:
    """Line metadata with keys Reevoo accepts; on a collision the first key wins."""
    reduced: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        name = reevoo_metadata_key(key)
        if not name:
            log.warning("reevoo_metadata_key_dropped", line_id=line_id, key=key,
                        why="no allowed character")
            continue
        if name in reduced:
            log.warning("reevoo_metadata_key_dropped", line_id=line_id, key=key,
                        why=f"collides with an earlier key after reduction to {name!r}")
            continue
        reduced[name] = value
    return reduced


def reevoo_item(line: OrderLine, currency: str) -> dict[str, Any]:
    item: dict[str, Any] = {"sku": line.sku}
    price = reevoo_price(line.unit_price)
    if price is not None:
        item["price"] = price
        item["currency"] = currency
    metadata = reevoo_metadata(line.metadata, line.line_id)
    if metadata:
        item["metadata"] = metadata
    return item


def reevoo_order_body(order: Order, trkref: str,
                      fulfilled_at: float | None = None) -> dict[str, Any]:
    """The body of ``POST /v4/organisations/{TRKREF}/customer_order``."""
    body: dict[str, Any] = {
        "trkref": trkref.strip().upper(),
        "order_ref": order.order_id,
        "order_date": reevoo_date(order),
    }
    if fulfilled_at is not None:
        body["fulfilment_date"] = reevoo_fulfilment_date(order, fulfilled_at)
    language, locale = reevoo_language_locale(order.locale)
    if language is not None:
        body["language"] = language
    if locale is not None:
        body["locale"] = locale
    customer = order.customer
    fields = {
        "email": customer.email,
        "customer_ref": customer.customer_id,
        "title": customer.title,
        "first_name": customer.first_name,
        # ISO 3166 alpha-2 in capitals, as Reevoo wants it ("gb" is refused with 422); a
        # country name is left out (the field is optional; "UNITED KINGDOM" is a 422).
        "country": _alpha_2(customer.country),
    }
    body["customer"] = {name: value for name, value in fields.items() if value}
    body["order_items"] = [reevoo_item(line, order.currency) for line in order.lines]
    return body


# ----------------------------------------------------------------------------- answers


def _alpha_2(country: str | None) -> str | None:
    code = (country or "").strip().upper()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


def reevoo_error(operation: str, answer: HttpAnswer) -> VendorError:
    """The one reading of a Reevoo answer that is not a success (see the module notes)."""
    if answer.status == 403:
        return VendorRejected(
            VENDOR, operation,
            f"Reevoo refused (HTTP 403): customer order submission is not enabled for the "
            f"organisation of ORDERFLOW_REEVOO__TRKREF; Reevoo's support enables it "
            f"({answer.message()})", answer.status)
    if answer.status in (404, 405):
        return VendorUnavailable(
            VENDOR, operation,
            f"HTTP {answer.status} (check ORDERFLOW_REEVOO__BASE_URL): {answer.message()}",
            answer.status,
        )
    return default_error_for(VENDOR, operation, answer)


def observation_from_accepted(answer: HttpAnswer) -> Observation:
    """A 2xx: Reevoo took the order. Its UUID is the vendor_order_ref when the body has one;
    an unreadable body does not undo the acceptance."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    submission_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(submission_id, str) or not submission_id:
        log.warning("reevoo_accepted_without_id", status=answer.status)
        submission_id = None
    return Observation(VendorStatus.COMPLETED, vendor_order_ref=submission_id)


# ----------------------------------------------------------------------------- adapter



class ReevooAdapter:
    """Submits customer orders to Reevoo.

    ``submit`` answers ``COMPLETED`` (vendor_order_ref = Reevoo's UUID, vendor_state
    ``accepted``) on a 202; the engine announces submitted then completed. ``poll`` never
    calls Reevoo (it has nothing to read): it restates that completion from the pair state.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: ReevooSettings,
        observer: RequestObserver | None = None,
        *,
        http: VendorHttp | None = None,
    ) -> None:
        self._settings = settings
        self._headers: dict[str, str] = {}
        if settings.api_key is not None and settings.api_secret is not None:
            self._headers["Authorization"] = basic_authorization(
                settings.api_key.get_secret_value(), settings.api_secret.get_secret_value()
            )
        self._http = http or VendorHttp.for_vendor(VENDOR, settings, observer)

    async def start(self) -> None:
        require_credentials(VENDOR, self._settings)
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def verify_credentials(self) -> str:
        """One harmless authenticated call (`orderflow check`): an empty object posted for
        the TRKREF, which Reevoo refuses for its content (422) once the credentials and
        the TRKREF pass; nothing can be accepted. Raises VendorError for 400/401/403."""
        operation = "check"
        # The TRKREF as `submit` sends it (in capitals): the one the check vouches for.
        trkref = (self._settings.trkref or "").strip().upper()
        answer = await self._http.request(
            operation, "POST", f"/v4/organisations/{quote(trkref, safe='')}/customer_order",
            json_body={}, headers=self._headers)
        if answer.status != 422:
            # Only a refusal of the empty order's content says credentials, TRKREF and the
            # feature all pass; 404/405 (a wrong base URL) and 429 say nothing of them.
            raise reevoo_error(operation, answer) if not answer.is_success else VendorRejected(
                VENDOR, operation, f"HTTP {answer.status} for an empty order: not Reevoo?")
        return "credentials and TRKREF accepted (HTTP 422 for an empty order)"

    async def submit(self, order: Order, state: PairState) -> Observation:
        operation = "submit_order"
        trkref = self._settings.trkref or ""  # start() checked it
        body = build_or_refuse(VENDOR, operation,
                               lambda: reevoo_order_body(order, trkref, state.fulfilled_at))
        try:
            answer = await self._http.request(
                operation, "POST",
                f"/v4/organisations/{quote(body['trkref'], safe='')}/customer_order",
                json_body=body, headers=self._headers,
            )
        except AnswerUnreadable as exc:
            if exc.status is None or not 200 <= exc.status < 300:
                raise
            # Accepted, whatever the body: Reevoo cannot be asked, and must never get the
            # order again after a 2xx.
            answer = HttpAnswer(exc.status, {}, b"")
        if answer.is_success:
            return observation_from_accepted(answer)
        raise reevoo_error(operation, answer)

    def polling_view(self, order: Order) -> Order | None:
        return None

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        # Only a 202 gives a Reevoo pair a recorded outcome, and that outcome is terminal.
        return Observation(
            VendorStatus.COMPLETED,
            vendor_order_ref=state.vendor_order_ref,
            vendor_state=state.vendor_state,
        )


__all__ = [
    "ReevooAdapter",
    "observation_from_accepted",
    "reevoo_date",
    "reevoo_error",
    "reevoo_item",
    "reevoo_language_locale",
    "reevoo_metadata",
    "reevoo_metadata_key",
    "reevoo_order_body",
    "reevoo_price",
]
