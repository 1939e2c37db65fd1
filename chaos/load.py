"""The load: the stream of orders, poison records and re-deliveries, and the producer that
is not orderflow's (confluent-kafka, librdkafka) publishing it at the plan's rate."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaos.plan import ChaosPlan
from orderflow.sandbox.samples import encode, sample_orders

MAX_RECORD_BYTES = 64 * 1024  # the replicas' limit: the oversized poison is above it


def poison_records(count: int, rng: random.Random) -> list[tuple[bytes, bytes | None]]:
    """Records no order can be read from, one kind after another: each must be dead-lettered."""
    kinds: list[Callable[[int], bytes | None]] = [
        lambda n: b'{"event_type": "order.created", "order": {"order_id": "P' + str(n).encode(),
        lambda n: json.dumps({"event_id": f"poison-{n}", "event_type": "order.created",
                              "schema_version": 1, "order": {"order_id": 42}}).encode(),
        lambda n: json.dumps({"event_type": "order.created",
                              "padding": "x" * (MAX_RECORD_BYTES + n)}).encode(),
        lambda n: b'{"event_id": "\xff\xfe' + str(n).encode() + b'"}',
        lambda n: None,  # a tombstone where an order was expected
    ]
    return [(f"poison-{n}".encode(), kinds[n % len(kinds)](n)) for n in range(count)]


@dataclass
class Stream:
    """What the producer sends, in order: orders, re-deliveries and poison, mixed."""

    records: list[tuple[str, bytes, bytes | None]]  # (kind, key, value)
    events: dict[str, dict[str, Any]]               # order_id -> event


def build_stream(plan: ChaosPlan) -> Stream:
    rng = random.Random(plan.seed)
    events = sample_orders(plan.orders, seed=plan.seed, prefix="CHAOS")
    records: list[tuple[str, bytes, bytes | None]] = [("order", *encode(e)) for e in events]
    for _ in range(plan.redeliveries):
        # Upstream re-sends an order it already sent, a little later (same key, same bytes).
        index = rng.randrange(len(events))
        at = min(len(records), index + rng.randint(1, max(2, len(events) // 10)))
        records.insert(at, ("redelivery", *encode(events[index])))
    for key, value in poison_records(plan.poison, rng):
        records.insert(rng.randrange(len(records) + 1), ("poison", key, value))
    return Stream(records, {e["order"]["order_id"]: e for e in events})


class Producer:
    """confluent-kafka in a thread of its own, paced at `rate` orders a second; remembers
    which records the broker acknowledged (a record never acknowledged was never sent)."""

    def __init__(self, bootstrap: str, topic: str, stream: Stream, rate: float) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._stream = stream
        self._rate = rate
        self.handed_over = 0
        self.delivered: Counter[str] = Counter()
        self.delivered_orders: set[str] = set()
        self.failed: list[str] = []
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self._stream.records)

    def run(self) -> None:
        from confluent_kafka import Producer as KafkaProducer

        producer = KafkaProducer({
            "bootstrap.servers": self._bootstrap, "acks": "all", "enable.idempotence": False,
            "partitioner": "murmur2_random",  # the Java client's: what upstream services use
            "linger.ms": 5, "message.timeout.ms": 300_000, "message.max.bytes": 4 * MAX_RECORD_BYTES,
        })
        began = time.monotonic()
        for n, (kind, key, value) in enumerate(self._stream.records):
            time.sleep(max(0.0, began + n / self._rate - time.monotonic()))

            def delivered(error: Any, message: Any, kind: str = kind, key: bytes = key) -> None:
                with self._lock:
                    if error is not None:
                        self.failed.append(f"{kind} {key!r}: {error}")
                        return
                    self.delivered[kind] += 1
                    if kind == "order":
                        self.delivered_orders.add(key.decode())

            while True:
                try:
                    producer.produce(self._topic, value, key=key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full (a broker stall): wait
                    producer.poll(0.5)
            self.handed_over = n + 1
            producer.poll(0)
        remaining = producer.flush(300)
        if remaining:
            self.failed.append(f"{remaining} records still unacknowledged after 300 s")


# ----------------------------------------------------------------------------- replicas
