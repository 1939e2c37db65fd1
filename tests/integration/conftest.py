"""Integration fixtures: one embedded broker per test session, fresh topics and consumer group
per test, the vendor simulators over real HTTP, and settings that point the service at them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from orderflow.config.settings import Settings, TopicSettings, load_settings
from orderflow.sandbox.broker import EmbeddedBroker, create_topics
from orderflow.sandbox.samples import encode

PARTITIONS = 4
_counter = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
async def topics(broker: EmbeddedBroker) -> TopicSettings:
    """Topic names of this test only, created as the platform would (tracking excluded:
    the service creates that one itself)."""
    prefix = f"t{next(_counter)}"
    names = TopicSettings(
        orders_created=f"{prefix}.orders.created", status=f"{prefix}.orders.status",
        print_files_ready=f"{prefix}.orders.print-files-ready",
        dead_letter=f"{prefix}.orders.created.dlq", tracking=f"{prefix}.orderflow.tracking",
    )
    await create_topics(broker.bootstrap_servers, [
        (names.orders_created, PARTITIONS, None), (names.status, PARTITIONS, None),
        (names.print_files_ready, PARTITIONS, None), (names.dead_letter, PARTITIONS, None),
    ])
    return names


def service_env(broker: EmbeddedBroker, topics: TopicSettings, **vendor_urls: str) -> dict[str, str]:
    """The ORDERFLOW_* environment a deployment would set, pointed at the sandbox."""
    env = {
        "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ORDERFLOW_KAFKA__GROUP_ID": f"orderflow-{topics.orders_created}",
        "ORDERFLOW_KAFKA__ENABLE_IDEMPOTENCE": "false",
        "ORDERFLOW_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "ORDERFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
        "ORDERFLOW_KAFKA__TRACKING_REPLICATION_FACTOR": "1",
        "ORDERFLOW_TOPICS__ORDERS_CREATED": topics.orders_created,
        "ORDERFLOW_TOPICS__STATUS": topics.status,
        "ORDERFLOW_TOPICS__PRINT_FILES_READY": topics.print_files_ready,
        "ORDERFLOW_TOPICS__DEAD_LETTER": topics.dead_letter,
        "ORDERFLOW_TOPICS__TRACKING": topics.tracking,
        "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "0.2",
        "ORDERFLOW_POLL__MAX_INTERVAL_S": "1",
        "ORDERFLOW_HTTP__HOST": "127.0.0.1",
        "ORDERFLOW_HTTP__PORT": "0",
        "ORDERFLOW_SHUTDOWN_GRACE_S": "5",
        "ORDERFLOW_ZAKEKE__ENABLED": "false",
        "ORDERFLOW_SMAKE__ENABLED": "false",
        "ORDERFLOW_REEVOO__ENABLED": "false",
    }
    if "zakeke" in vendor_urls:
        env.update({"ORDERFLOW_ZAKEKE__ENABLED": "true", "ORDERFLOW_ZAKEKE__BASE_URL": vendor_urls["zakeke"],
                    "ORDERFLOW_ZAKEKE__CLIENT_ID": "zakeke-sim-client",
                    "ORDERFLOW_ZAKEKE__CLIENT_SECRET": "zakeke-sim-secret"})
    if "smake" in vendor_urls:
        env.update({"ORDERFLOW_SMAKE__ENABLED": "true", "ORDERFLOW_SMAKE__BASE_URL": vendor_urls["smake"],
                    "ORDERFLOW_SMAKE__API_KEY": "smake-sim-key"})
    if "reevoo" in vendor_urls:
        env.update({"ORDERFLOW_REEVOO__ENABLED": "true", "ORDERFLOW_REEVOO__BASE_URL": vendor_urls["reevoo"],
                    "ORDERFLOW_REEVOO__API_KEY": "reevoo-sim-key",
                    "ORDERFLOW_REEVOO__API_SECRET": "reevoo-sim-secret",
                    "ORDERFLOW_REEVOO__TRKREF": "TRKREF123"})
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


async def produce(bootstrap_servers: str, topic: str, events: list[dict[str, Any]],
                  raw: list[tuple[bytes | None, bytes | None]] | None = None) -> None:
    """Publish as upstream would (key = order_id); `raw` adds arbitrary records."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in map(encode, events)]
        for key, value in raw or []:
            futures.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
