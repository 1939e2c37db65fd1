"""The load: the stream of orders, poison records and re-deliveries, and the producer that
is not orderflow's (confluent-kafka, librdkafka) publishing it at the plan's rate."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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


# (kind, key, value, partition): the partition is None for the producer's partitioner.
StreamRecord = tuple[str, bytes, bytes | None, int | None]

# When a cancellation comes, in seconds after its order (negative: before it), turned into
# records at the plan's rate. "ended": after every other record.
CANCEL_TIMINGS: dict[str, tuple[float, float] | None] = {
    "before": (-1.5, -0.05),   # the cancellation first, the order a moment later
    "waiting": (0.02, 0.3),    # the order's pairs waiting, or being created
    "producing": (1.0, 5.0),   # Smake producing (a second per state), Zakeke's files pending
    "ended": None,             # at the end of the stream: the order's pairs ended
}


@dataclass
class Stream:
    """What the producer sends, in order: orders, re-deliveries, cancellations and poison,
    mixed."""

    records: list[StreamRecord]
    events: dict[str, dict[str, Any]]               # order_id -> event
    # order_id -> when its cancellation came (a CANCEL_TIMINGS name) and whether on
    # another partition than the producer's partitioner would choose.
    cancelled: dict[str, tuple[str, bool]] = field(default_factory=dict)


def cancellation(order_id: str, n: int) -> dict[str, Any]:
    return {"event_id": f"chaos-cancel-{n}", "event_type": "order.cancelled",
            "schema_version": 1, "occurred_at": "2026-12-01T10:00:00Z", "order_id": order_id,
            "reason": f"chaos: customer {n} changed their mind"}


def build_stream(plan: ChaosPlan) -> Stream:
    rng = random.Random(plan.seed)
    events = sample_orders(plan.orders, seed=plan.seed, prefix="CHAOS")
    records: list[StreamRecord] = [("order", *encode(e), None) for e in events]
    for _ in range(plan.redeliveries):
        # Upstream re-sends an order it already sent, a little later (same key, same bytes).
        index = rng.randrange(len(events))
        at = min(len(records), index + rng.randint(1, max(2, len(events) // 10)))
        records.insert(at, ("redelivery", *encode(events[index]), None))
    cancelled: dict[str, tuple[str, bool]] = {}
    timings = list(CANCEL_TIMINGS)
    at_the_end: list[StreamRecord] = []
    for n, index in enumerate(rng.sample(range(len(events)), min(plan.cancellations, len(events)))):
        order_id = events[index]["order"]["order_id"]
        timing = timings[n % len(timings)]
        elsewhere = n % 3 == 0 and plan.partitions > 1
        cancel_value = json.dumps(cancellation(order_id, n)).encode()
        # Another partition than the order's: one the partitioner does not choose for it
        # (the harness does not compute it; a random one is another one most of the time).
        partition = rng.randrange(plan.partitions) if elsewhere else None
        copies = 2 if n % 10 == 0 else 1
        for _ in range(copies):
            record: StreamRecord = ("cancellation", order_id.encode(), cancel_value, partition)
            window = CANCEL_TIMINGS[timing]
            if window is None:
                at_the_end.append(record)
                continue
            where = next(i for i, r in enumerate(records)
                         if r[0] == "order" and r[1] == order_id.encode())
            shift = round(rng.uniform(*window) * plan.rate)
            shift = max(1, shift) if window[0] > 0 else min(-1, shift)
            records.insert(max(0, min(len(records), where + shift + (1 if shift > 0 else 0))),
                           record)
        cancelled[order_id] = (timing, elsewhere)
    for key, value in poison_records(plan.poison, rng):
        records.insert(rng.randrange(len(records) + 1), ("poison", key, value, None))
    return Stream(records + at_the_end, {e["order"]["order_id"]: e for e in events}, cancelled)


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
        for n, (kind, key, value, partition) in enumerate(self._stream.records):
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
                    if partition is None:
                        producer.produce(self._topic, value, key=key, on_delivery=delivered)
                    else:
                        producer.produce(self._topic, value, key=key, partition=partition,
                                         on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full (a broker stall): wait
                    producer.poll(0.5)
            self.handed_over = n + 1
            producer.poll(0)
        remaining = producer.flush(300)
        if remaining:
            self.failed.append(f"{remaining} records still unacknowledged after 300 s")


# ----------------------------------------------------------------------------- replicas
