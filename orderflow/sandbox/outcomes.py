"""Reads orderflow's output topics as a downstream consumer would, and counts what matters:
per (order, vendor) pair, which statuses arrived and how many terminal events; print files
per line; repeats by event id. The demo, the tests, the benchmark and the chaos run all
judge the service by these counts, against the pairs the orders fed must end in
(`expected_pairs`)."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderflow.config.settings import Settings
from orderflow.consumer.routing import route
from orderflow.consumer.topic_end import read_to_end
from orderflow.contracts.events import OrderCreated

TERMINAL = frozenset({"completed", "failed", "rejected", "cancelled", "timed_out"})
Pair = tuple[str, str]  # (order_id, vendor)


@dataclass
class Outcomes:
    statuses: dict[Pair, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Terminal events by distinct event id: a repeat with the same id is dropped downstream.
    terminal_ids: dict[Pair, set[str]] = field(default_factory=lambda: defaultdict(set))
    terminal_status: dict[Pair, str] = field(default_factory=dict)
    reasons: dict[Pair, str | None] = field(default_factory=dict)
    print_files: dict[tuple[str, str], int] = field(default_factory=Counter)
    event_ids: Counter[str] = field(default_factory=Counter)
    first_seen: dict[Pair, float] = field(default_factory=dict)
    terminal_at: dict[Pair, float] = field(default_factory=dict)
    # Tracking numbers announced, per pair: in its terminal event, or after it
    # (order.shipment_tracking).
    shipment_tracking: dict[Pair, list[list[str]]] = field(default_factory=dict)
    # `order.cancellation_refused` events per pair (by distinct event id).
    refusals: dict[Pair, dict[str, str]] = field(default_factory=dict)

    def add_status(self, raw: bytes, seen_at: float | None = None) -> dict[str, Any]:
        """An event of the status topic: a status change, or tracking numbers known only
        after a pair completed (told apart by `event_type`)."""
        event: dict[str, Any] = json.loads(raw)
        pair = (event["order_id"], event["vendor"])
        self.event_ids[event["event_id"]] += 1
        if event.get("event_type") == "order.shipment_tracking":
            self.shipment_tracking.setdefault(pair, []).append(event["tracking_numbers"])
            return event
        if event.get("event_type") == "order.cancellation_refused":
            self.refusals.setdefault(pair, {})[event["event_id"]] = event.get("reason") or ""
            return event
        self.statuses[pair].append(event["status"])
        now = time.time() if seen_at is None else seen_at
        self.first_seen.setdefault(pair, now)
        if event["terminal"]:
            self.terminal_ids[pair].add(event["event_id"])
            self.terminal_status.setdefault(pair, event["status"])
            if event.get("tracking_numbers"):
                self.shipment_tracking.setdefault(pair, []).append(event["tracking_numbers"])
            self.reasons.setdefault(pair, event.get("reason"))
            self.terminal_at.setdefault(pair, now)
        return event

    def add_print_files(self, raw: bytes) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(raw)
        self.event_ids[event["event_id"]] += 1
        self.print_files[(event["order_id"], event["line_id"])] += 1
        return event

    # ---- the numbers

    def finished_pairs(self) -> set[Pair]:
        return set(self.terminal_ids)

    def pairs_with_several_terminals(self) -> set[Pair]:
        """Distinct terminal event ids above one: a contract breach even after de-duplication."""
        return {pair for pair, ids in self.terminal_ids.items() if len(ids) > 1}

    def completed_without_tracking(self, vendor: str) -> set[Pair]:
        """The vendor's completed pairs whose tracking numbers were never announced."""
        return {pair for pair, status in self.terminal_status.items()
                if pair[1] == vendor and status == "completed" and pair not in self.shipment_tracking}

    def repeated_events(self) -> int:
        """Deliveries beyond the first of the same event id (a consumer drops these)."""
        return sum(count - 1 for count in self.event_ids.values() if count > 1)

    def by_vendor(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for (_, vendor), status in self.terminal_status.items():
            table[vendor][status] += 1
        return table


def expected_pairs(events: Iterable[dict[str, Any]], settings: Settings) -> set[Pair]:
    """The (order, vendor) pairs these `order.created` events must end in under `settings`:
    what the service's own routing makes of them. Every event must be valid."""
    pairs: set[Pair] = set()
    for event in events:
        order = OrderCreated.model_validate(event).order
        pairs.update((order.order_id, str(vendor)) for vendor in route(order, settings))
    return pairs


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, asking the broker once more if the consumer's metadata does
    not know the topic yet (partition 0 if even that does not)."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer.topics()  # fetches the cluster's metadata afresh
        partitions = consumer.partitions_for_topic(topic) or {0}
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def read_topic(bootstrap_servers: str, topic: str) -> list[Any]:
    """Every record of the topic, from its beginning to its end as it is now (records of up
    to 8 MiB each), read as the service reads to an end (consumer/topic_end.py)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []

        async def take(tp: TopicPartition, part: list[Any]) -> None:
            records.extend(part)

        await read_to_end(consumer, tps, take, max_records=5_000)
        return records
    finally:
        await consumer.stop()


class OutputReader:
    """Follows the status and print-files topics from their beginning."""

    def __init__(self, bootstrap_servers: str, status_topic: str, print_files_topic: str, *,
                 fetch_max_wait_ms: int = 500) -> None:
        self._bootstrap = bootstrap_servers
        self._status_topic = status_topic
        self._print_files_topic = print_files_topic
        # How long the broker may hold a fetch waiting for records (aiokafka's default 500 ms);
        # a latency measurement wants it short, since it adds to every record's read time.
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self.outcomes = Outcomes()
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest",
                                    fetch_max_wait_ms=self._fetch_max_wait_ms)
        await consumer.start()
        tps = [*await topic_partitions(consumer, self._status_topic),
               *await topic_partitions(consumer, self._print_files_topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> int:
        """Read what has arrived; returns the number of records read."""
        assert self._consumer is not None, "start() first"
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        count = 0
        now = time.time()
        for tp, records in batch.items():
            for record in records:
                count += 1
                if tp.topic == self._status_topic:
                    self.outcomes.add_status(record.value, now)
                else:
                    self.outcomes.add_print_files(record.value)
        return count

    async def wait_for(self, pairs: set[Pair], timeout_s: float) -> bool:
        """Read until every pair has a terminal status, or the time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.poll()
            if pairs <= self.outcomes.finished_pairs():
                return True
        return pairs <= self.outcomes.finished_pairs()
