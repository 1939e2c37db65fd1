"""Dead letters: an input record that cannot become an order, written to the dead-letter
topic as its original key and bytes with headers saying why (contracts/dead_letters.py).
A record too large to carry goes without its value (and, if need be, its key), its sizes
in headers; the input topic still holds it at the offset the headers name."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from orderflow.consumer.decode import Undecodable
from orderflow.consumer.logging import get_logger
from orderflow.contracts import control, dead_letters

log = get_logger(__name__)

# Writes the brokers refuse for their size: retrying them can never succeed.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)
# Record framing and batch header that a record costs beyond its key, value and headers.
DEAD_LETTER_OVERHEAD = 1_024

# aiokafka ships no type information: a consumed record, with bytes key and value.
Record: TypeAlias = Any  # ConsumerRecord[bytes, bytes]
Headers: TypeAlias = list[tuple[str, bytes]]


@dataclass
class PendingLetter:
    """A dead letter handed to the producer: `written()` waits for the broker, and sends the
    letter without its value should the broker refuse it for its size."""

    _producer: AIOKafkaProducer
    _topic: str
    _future: asyncio.Future[Any]
    _fallback_key: bytes | None
    _fallback_headers: Headers

    async def written(self) -> None:
        try:
            await self._future
        except TOO_LARGE:
            await (await self._producer.send(self._topic, b"", key=self._fallback_key,
                                             headers=self._fallback_headers))


class DeadLetters:
    """Writes one dead letter per refused input record: its original bytes, with headers
    saying why (contracts/dead_letters.py)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, max_message_bytes: int) -> None:
        self._producer = producer
        self._topic = topic
        self._max_message_bytes = max_message_bytes

    async def send(self, record: Record, why: Undecodable) -> PendingLetter:
        """Hand the record's dead letter to the producer (all of a batch's are handed over
        first, then awaited: one round trip per batch). Logged with the order id the
        record names, if any."""
        log.warning("dead letter", reason=why.reason, partition=record.partition,
                    offset=record.offset, order_id=order_id_in(record.value, record.key),
                    error=why.message[:300])
        headers = [
            (dead_letters.ERROR_CLASS, dead_letters.header_text(why.error_class)),
            (dead_letters.ERROR_MESSAGE, dead_letters.header_text(why.message)),
            (dead_letters.ORIGINAL_TOPIC, dead_letters.header_text(record.topic)),
            (dead_letters.ORIGINAL_PARTITION, str(record.partition).encode()),
            (dead_letters.ORIGINAL_OFFSET, str(record.offset).encode()),
            (dead_letters.FAILED_AT, datetime.now(UTC).isoformat().encode()),
            (dead_letters.ERROR_REASON, why.reason.encode()),
            # A replayed letter that fails again says which letter it replays: `dlq replay`
            # then does not replay that failure again and again (each run would add one).
            *[(name, bytes(value or b"")[:512]) for name, value in record.headers or ()
              if name == control.REPLAYED_FROM][:1],
        ]
        key, value = record.key, record.value
        if key is None and value is None:
            # A record with neither: the client refuses to write one (it asserts), and that
            # once stopped the intake loop. An empty value is the closest copy.
            value = b""
        # Should the broker refuse even what fits our limit: the letter without key and value.
        fallback_key, _, fallback_headers = _omitted(key, value, headers, 0)
        room = self._max_message_bytes - DEAD_LETTER_OVERHEAD
        if len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers) > room:
            key, value, headers = _omitted(key, value, headers, room)
        future: asyncio.Future[Any] = await self._producer.send(self._topic, value, key=key,
                                                                headers=headers)
        return PendingLetter(self._producer, self._topic, future, fallback_key, fallback_headers)


def order_id_in(value: bytes | None, key: bytes | None) -> str | None:
    """The order id a refused record names, for the log line an operator searches by: its
    `order.order_id` when the value is a JSON object that has one, else its key. Never
    raises; at most 200 characters."""
    found: object = None
    if value is not None and len(value) <= 1_048_576:
        try:
            data = json.loads(value)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("order"), dict):
            found = data["order"].get("order_id")
    if not isinstance(found, str) and key is not None:
        found = key.decode("utf-8", "replace")
    return found[:200] if isinstance(found, str) and found else None


def _omitted(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]],
             room: int) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The dead letter of a record too large to carry: its value left out (and its key,
    when that alone is too large), their sizes in headers. The input topic still holds the
    record at the offset the headers name."""
    headers = [*headers, (dead_letters.VALUE_OMITTED, str(len(value or b"")).encode())]
    if key is not None and len(key) > room // 2:
        headers.append((dead_letters.KEY_OMITTED, str(len(key)).encode()))
        key = None
    return key, b"", headers
