"""`POST /webhooks/smake`: Smake's webhook deliveries, turned into hints on the control topic
(contract "HTTP"; contracts/control.py).

A delivery is verified (`X-Signature`, the hex HMAC-SHA256 of the raw body keyed by
ORDERFLOW_SMAKE__WEBHOOK_TOKEN, compared in constant time), read for the order it names,
and written to the control topic before it is answered 202: whichever replica receives it,
the one owning the order reads the hint and polls the order now. The hint is never trusted
for the state, which is always read from Smake with the id we recorded: a forged delivery,
signed or not, can make no call to Smake for an order we do not follow, and changes nothing
by itself for one we do.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.contracts import control
from orderflow.contracts.events import Vendor

log = get_logger(__name__)

SIGNATURE_HEADER = "X-Signature"
# A valid signature is 64 hex digits, with an optional `sha256=` prefix: anything else is
# refused before a byte of the body is read.
_SIGNATURE = re.compile(r"(?:sha256=)?[0-9a-f]{64}", re.IGNORECASE)
# Repeated deliveries for one order within this window make one hint: the owner polls a
# hinted pair HINT_HOLD_S (1 s, consumer/scheduler.py) after reading the hint, so a change
# announced within half of that is seen by the same poll.
COALESCE_S = 0.5
# Deliveries remembered as noted (Smake retries a delivery for up to 48 hours), at most.
REMEMBERED_DELIVERIES = 100_000
REMEMBER_FOR_S = 49 * 3600.0
_MAX_ID_CHARS = 128


def signature_valid(token: bytes, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is the hex HMAC-SHA256 of `body` keyed by `token` (an optional
    `sha256=` prefix and any letter case accepted)."""
    if not signature:
        return False
    given = signature.strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256="):]
    expected = hmac.new(token, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.lower().encode("ascii", "replace"))


def looks_like_signature(signature: str | None) -> bool:
    return signature is not None and _SIGNATURE.fullmatch(signature.strip()) is not None


def delivery_digest(body: bytes) -> str:
    """The key part a delivery's hint is written under: the same bytes, the same key, on
    every replica."""
    return hashlib.sha256(body).hexdigest()[:32]


class DeliveryLedger:
    """The deliveries noted on the control topic, by any replica (its reader notes every
    hint key it reads, tombstones included) or by this one (before the write, so that
    concurrent copies of one delivery make one record). Bounded by count and by age."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._noted: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, digest: str) -> bool:
        return digest in self._noted

    def claim(self, digest: str) -> bool:
        """Note the delivery unless it is noted already; whether this call noted it."""
        if digest in self._noted:
            return False
        self._remember(digest, self._clock())
        return True

    def release(self, digest: str) -> None:
        """A claimed delivery that could not be written: the next copy may note it."""
        self._noted.pop(digest, None)

    def note_key(self, key: bytes, written_at: float) -> None:
        """A hint key read from the control topic (`hint/<vendor>/<digest>`)."""
        digest = key.rsplit(b"/", 1)[-1]
        if len(digest) == 32 and self._clock() - written_at < REMEMBER_FOR_S:
            self._remember(digest.decode("ascii", "replace"), written_at)

    def _remember(self, digest: str, at: float) -> None:
        self._noted[digest] = at
        self._noted.move_to_end(digest)
        horizon = self._clock() - REMEMBER_FOR_S
        while self._noted and (len(self._noted) > REMEMBERED_DELIVERIES
                               or next(iter(self._noted.values())) < horizon):
            self._noted.popitem(last=False)

    def __len__(self) -> int:
        return len(self._noted)


def _text_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    # Not printable: control characters, and lone surrogates, which no UTF-8 record can hold.
    if not text or len(text) > _MAX_ID_CHARS or not text.isprintable():
        return None
    return text


_ENVELOPES = ("data", "resource", "object", "payload", "order", "shipment", "attributes")
_ORDER_SIGNS = ("external_identifier", "state", "items", "shipments", "order_id", "order")
# What only an order itself carries (a shipment names its order by `order_id` or `order`).
_OWN_ORDER_SIGNS = ("external_identifier", "state", "items", "shipments")


def _has_sign(candidate: dict[str, Any]) -> bool:
    # An `order` member that is itself an object is an envelope holding the resource, not a
    # sign that the candidate is one: `{"id": "evt_1", "order": {...}}` is the delivery.
    return any(sign in candidate and not (sign == "order" and isinstance(candidate[sign], dict))
               for sign in _ORDER_SIGNS)


def _resource(delivery: dict[str, Any]) -> dict[str, Any] | None:
    """The resource a delivery carries. Smake's pages say only "the event and the resource",
    so the usual envelopes are all looked into (`data`, `resource`, `object`, `payload`,
    `order`, ..., nested up to four deep, or the delivery itself): the first object with an
    `id` and a sign of being an order or a shipment (`external_identifier`, `state`, ...)
    wins, else the first with an `id`. An envelope's own `id` (the delivery's) never wins
    over the resource inside it."""
    with_id: dict[str, Any] | None = None
    level = [delivery]
    for _ in range(4):
        deeper: list[dict[str, Any]] = []
        for candidate in level:
            if "id" in candidate:
                if _has_sign(candidate):
                    return candidate
                with_id = with_id or candidate
            deeper.extend(inner for name in _ENVELOPES
                          if isinstance(inner := candidate.get(name), dict))
        level = deeper
    return with_id


def hint_from_delivery(body: bytes, now: float) -> control.Hint | str:
    """The hint a delivery gives, or why it gives none (a word for the metric and the log):
    `unreadable` (not a JSON object), `ignored` (an event about something else than an
    order, or naming no order)."""
    try:
        # Strict UTF-8 first: json.loads would otherwise guess an encoding.
        delivery = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return "unreadable"
    if not isinstance(delivery, dict):
        return "unreadable"
    try:
        # "\ud800" is valid JSON but no UTF-8 text: a delivery holding one is not Smake's.
        json.dumps(delivery, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return "unreadable"
    event = delivery.get("event") or delivery.get("type") or delivery.get("topic")
    event = event if isinstance(event, str) and _encodable(event) else None
    resource = _resource(delivery)
    if resource is None:
        return "ignored"
    if event is not None and not event.startswith(("order.", "shipment.")):
        return "ignored"  # variant and logo events
    if (event is not None and event.startswith("shipment.")
            and not any(sign in resource for sign in _OWN_ORDER_SIGNS)):
        # The shipment names its order by id, or holds it.
        named = resource.get("order")
        order = named if isinstance(named, dict) else {}
        ref = (_text_id(resource.get("order_id")) or _text_id(order.get("id"))
               or (_text_id(named) if not isinstance(named, dict) else None))
        ours = _text_id(order.get("external_identifier"))
    else:
        ref = _text_id(resource.get("id"))
        ours = _text_id(resource.get("external_identifier"))
    if ref is None and ours is None:
        return "ignored"
    return control.Hint(at=now, vendor=Vendor.SMAKE, vendor_order_ref=ref,
                        order_id=ours if ours is not None and len(ours) <= 64 else None,
                        event=event[:200] if event else None, delivery=delivery_digest(body))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" is valid JSON)
        return False
    return True


class SmakeWebhooks:
    """The door. In order, each step cheaper than the next: a missing or malformed
    signature is refused before a byte of the body is read (401); past `max_concurrent`
    requests reading or writing, 503 (Smake delivers again); a declared body over the limit
    is refused unread (413); the body is read within `read_timeout_s` and the limit; then the
    signature is checked, the delivery read, and its hint written once, whichever replica
    or copy comes first."""

    def __init__(self, token: str, producer: AIOKafkaProducer, control_topic: str,
                 metrics: Metrics, clock: Callable[[], float] = time.time, *,
                 max_body_bytes: int = 65_536, read_timeout_s: float = 10.0,
                 max_concurrent: int = 32, deliveries: DeliveryLedger | None = None) -> None:
        self._token = token.encode()
        self._producer = producer
        self._topic = control_topic
        self._metrics = metrics
        self._clock = clock
        self._max_body = max_body_bytes
        self._read_timeout_s = read_timeout_s
        self._max_concurrent = max_concurrent
        self._busy = 0
        self.deliveries = deliveries if deliveries is not None else DeliveryLedger(clock)
        # The last hint written per order (its hint's order words) and when: see COALESCE_S.
        self._last_hint: OrderedDict[tuple[str | None, str | None], float] = OrderedDict()
        # Set once the producer runs: a delivery before that is answered 503 (Smake retries).
        self.accepting = False

    def _count(self, result: str) -> None:
        self._metrics.webhook_deliveries.labels("smake", result).inc()

    async def handle(self, request: web.Request) -> web.Response:
        signature = request.headers.get(SIGNATURE_HEADER)
        if not looks_like_signature(signature):
            result = "unsigned" if not signature else "bad_signature"
            self._count(result)
            return _answer(401, f"missing or malformed {SIGNATURE_HEADER}")
        if not self.accepting:
            self._count("kafka_error")
            return _answer(503, "starting or stopping, deliver again later")
        if self._busy >= self._max_concurrent:
            self._count("busy")
            return _answer(503, "busy, deliver again later")
        if request.content_length is not None and request.content_length > self._max_body:
            self._count("too_large")
            return _answer(413, f"a delivery is at most {self._max_body} bytes")
        self._busy += 1
        try:
            return await self._handle(request, signature)
        finally:
            self._busy -= 1

    async def _handle(self, request: web.Request, signature: str | None) -> web.Response:
        body = bytearray()
        try:
            async with asyncio.timeout(self._read_timeout_s):
                async for chunk in request.content.iter_any():
                    body.extend(chunk)
                    if len(body) > self._max_body:
                        self._count("too_large")
                        return _answer(413, f"a delivery is at most {self._max_body} bytes")
        except TimeoutError:
            self._count("slow")
            return _answer(408, f"the body did not arrive within {self._read_timeout_s:g}s")
        raw = bytes(body)
        del body
        if not signature_valid(self._token, raw, signature):
            self._count("bad_signature")
            log.warning("webhook delivery refused", vendor="smake", result="bad_signature",
                        remote=request.remote)
            return _answer(401, f"wrong {SIGNATURE_HEADER}")
        hint = hint_from_delivery(raw, self._clock())
        if isinstance(hint, str):
            self._count(hint)
            log.info("webhook delivery without an order to look at", vendor="smake", result=hint)
            if hint == "unreadable":
                return _answer(400, "the body is not a JSON object in UTF-8")
            return _answer(200, "ignored: names no order")
        assert hint.delivery is not None
        if not self.deliveries.claim(hint.delivery):
            self._count("repeat")
            return _answer(200, "repeat: already noted")
        order = (hint.vendor_order_ref, hint.order_id)
        now = self._clock()
        if now - self._last_hint.get(order, -COALESCE_S) < COALESCE_S:
            self._count("coalesced")
            return _answer(202, "noted with the order's hint of a moment ago")
        try:
            await self._producer.send_and_wait(self._topic, hint.model_dump_json().encode(),
                                               key=hint.key())
        except KafkaError as exc:
            self.deliveries.release(hint.delivery)
            self._count("kafka_error")
            self._metrics.kafka_errors.labels("webhook").inc()
            log.warning("could not note a webhook delivery; Smake will deliver it again",
                        error=str(exc))
            return _answer(503, "could not note the delivery, try again")
        self._last_hint[order] = now
        self._last_hint.move_to_end(order)
        while self._last_hint and now - next(iter(self._last_hint.values())) >= COALESCE_S:
            self._last_hint.popitem(last=False)
        self._count("noted")
        log.info("webhook delivery noted", vendor="smake", smake_event=hint.event,
                 vendor_order_ref=hint.vendor_order_ref, order_id=hint.order_id)
        return _answer(202, "noted")


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"status": status, "message": message}, status=status)
