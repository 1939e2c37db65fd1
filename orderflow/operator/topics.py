"""Reading and writing topics for the operator commands: whole partitions read from their
start to the end they had when asked (no consumer group, nothing committed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from orderflow.config.settings import KafkaSettings
from orderflow.consumer.kafka import client_options, make_producer
from orderflow.consumer.topic_end import read_to_end

# How long a command waits for the brokers before it says they cannot be reached.
CONNECT_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Read:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def producer_partition(key: bytes, partitions: int) -> int:
    """The partition orderflow's producer (murmur2, as Java's) writes a keyed record to."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


async def read_topic(kafka: KafkaSettings, topic: str, *, partitions: Iterable[int] | None = None,
                     keep: Callable[[bytes | None], bool] | None = None,
                     start_offsets: dict[int, int] | None = None,
                     limit: int | None = None) -> list[Read]:
    """Every record of the topic (or of the given partitions) up to their current ends
    (`read_to_end`: the end as the fetches report it, not only as listed), in offset order
    per partition; `keep` filters by key before anything is kept; `limit` stops once that
    many are kept."""
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        known = consumer.partitions_for_topic(topic)
        if not known:
            await consumer.topics()
            known = consumer.partitions_for_topic(topic) or set()
        wanted = sorted(known if partitions is None else set(partitions) & known)
        if not wanted:
            return []
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        for tp in tps:
            start = (start_offsets or {}).get(tp.partition)
            if start is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
        found: list[Read] = []

        async def take(tp: TopicPartition, records: list[Any]) -> None:
            for record in records:
                if keep is not None and not keep(record.key):
                    continue
                if limit is not None and len(found) >= limit:
                    return
                found.append(Read(record.topic, record.partition, record.offset,
                                  record.timestamp, record.key, record.value,
                                  tuple((n, bytes(v or b"")) for n, v in record.headers or ())))

        await read_to_end(consumer, tps, take, max_records=5000,
                          enough=None if limit is None else lambda: len(found) >= limit)
        return found
    finally:
        await consumer.stop()


async def partition_count(kafka: KafkaSettings, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False)
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        await consumer.topics()
        known = consumer.partitions_for_topic(topic)
        return len(known) if known else None
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def producer_session(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer for one command, stopped however the command ends (a client left
    unstopped is reported "Unclosed" on the way out)."""
    producer = make_producer(kafka)
    try:
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
        yield producer
    finally:
        await producer.stop()


def text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def as_dict(read: Read) -> dict[str, Any]:
    return {"topic": read.topic, "partition": read.partition, "offset": read.offset,
            "timestamp_ms": read.timestamp_ms, "key": None if read.key is None else text(read.key),
            "headers": {name: text(value) for name, value in read.headers}}
