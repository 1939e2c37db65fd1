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

import hashlib
import hmac
import json
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
MAX_BODY_BYTES = 1_048_576
# Deliveries remembered to drop repeats before they reach Kafka (Smake retries for 48 hours).
REMEMBERED_DELIVERIES = 10_000
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


def _text_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > _MAX_ID_CHARS or not text.isprintable():
        return None
    return text


_ENVELOPES = ("data", "resource", "object", "payload", "order", "shipment", "attributes")
_ORDER_SIGNS = ("external_identifier", "state", "items", "shipments", "order_id", "order")


def _resource(delivery: dict[str, Any]) -> dict[str, Any] | None:
    """The resource a delivery carries. Smake's pages say only "the event and the resource",
    so the usual envelopes are all looked into (`data`, `resource`, `object`, `payload`,
    `order`, ..., nested up to four deep, or the delivery itself): the first object with an
    `id` and a sign of being an order or a shipment (`external_identifier`, `state`, ...)
    wins, else the first with an `id`."""
    with_id: dict[str, Any] | None = None
    level = [delivery]
    for _ in range(4):
        deeper: list[dict[str, Any]] = []
        for candidate in level:
            if "id" in candidate:
                if any(sign in candidate for sign in _ORDER_SIGNS):
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
        delivery = json.loads(body)
    except (ValueError, RecursionError):
        return "unreadable"
    if not isinstance(delivery, dict):
        return "unreadable"
    event = delivery.get("event") or delivery.get("type") or delivery.get("topic")
    event = event if isinstance(event, str) else None
    resource = _resource(delivery)
    if resource is None:
        return "ignored"
    if event is not None and not event.startswith(("order.", "shipment.")):
        return "ignored"  # variant and logo events
    if event is not None and event.startswith("shipment."):
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
                        event=event[:200] if event else None)


class SmakeWebhooks:
    def __init__(self, token: str, producer: AIOKafkaProducer, control_topic: str,
                 metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self._token = token.encode()
        self._producer = producer
        self._topic = control_topic
        self._metrics = metrics
        self._clock = clock
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        # Set once the producer runs: a delivery before that is answered 503 (Smake retries).
        self.accepting = False

    def _count(self, result: str) -> None:
        self._metrics.webhook_deliveries.labels("smake", result).inc()

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            self._count("too_large")
            return _answer(413, f"a delivery is at most {MAX_BODY_BYTES} bytes")
        body = bytearray()
        async for chunk in request.content.iter_any():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                self._count("too_large")
                return _answer(413, f"a delivery is at most {MAX_BODY_BYTES} bytes")
        raw = bytes(body)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature_valid(self._token, raw, signature):
            result = "unsigned" if not signature else "bad_signature"
            self._count(result)
            log.warning("webhook delivery refused", vendor="smake", result=result,
                        remote=request.remote)
            return _answer(401, f"missing or wrong {SIGNATURE_HEADER}")
        if not self.accepting:
            self._count("kafka_error")
            return _answer(503, "starting or stopping, deliver again later")
        digest = hashlib.sha256(raw).digest()
        if digest in self._seen:
            self._count("repeat")
            return _answer(200, "repeat: already noted")
        hint = hint_from_delivery(raw, self._clock())
        if isinstance(hint, str):
            self._count(hint)
            log.info("webhook delivery without an order to look at", vendor="smake", result=hint)
            if hint == "unreadable":
                return _answer(400, "the body is not a JSON object")
            return _answer(200, "ignored: names no order")
        try:
            await self._producer.send_and_wait(self._topic, hint.model_dump_json().encode(),
                                               key=hint.key())
        except KafkaError as exc:
            self._count("kafka_error")
            self._metrics.kafka_errors.labels("webhook").inc()
            log.warning("could not note a webhook delivery; Smake will deliver it again",
                        error=str(exc))
            return _answer(503, "could not note the delivery, try again")
        self._seen[digest] = None
        if len(self._seen) > REMEMBERED_DELIVERIES:
            self._seen.popitem(last=False)
        self._count("noted")
        log.info("webhook delivery noted", vendor="smake", smake_event=hint.event,
                 vendor_order_ref=hint.vendor_order_ref, order_id=hint.order_id)
        return _answer(202, "noted")


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"status": status, "message": message}, status=status)
