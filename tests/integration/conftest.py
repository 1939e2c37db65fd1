"""Integration fixtures: one embedded broker per test session, fresh topics and consumer group
per test, the vendor simulators over real HTTP, and settings that point the service at them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from orderflow.adapters.outcomes import PairState
from orderflow.config.settings import Settings, TopicSettings, load_settings
from orderflow.consumer.app import Application
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, prefixed_topics
from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.processes import sandbox_env
from orderflow.sandbox.samples import encode

PARTITIONS = 4
_counter = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[SandboxBroker]:
    """The broker TEST_BROKER names (orderflow/sandbox/broker.py): the embedded one by
    default, `noida` for the strict lane, or kafka://host:port of a cluster of one's own."""
    with chosen_broker() as running:
        yield running


# What the broker conformance probes found (test_broker_conformance.py), for the summary.
_FINDINGS: list[tuple[str, str, str]] = []


def record_finding(broker: SandboxBroker, what: str, found: str) -> None:
    _FINDINGS.append((broker.abilities.name, what, found))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FINDINGS:
        terminalreporter.section("what the test broker does as Kafka does")
        for name, what, found in _FINDINGS:
            terminalreporter.write_line(f"{name}: {what}: {found}")


def needs(broker: SandboxBroker, *abilities: str) -> None:
    """Skip a test whose subject this broker cannot show (declared in its abilities)."""
    missing = [a for a in abilities if not getattr(broker.abilities, a)]
    if missing:
        pytest.skip(f"the {broker.abilities.name} broker lacks {', '.join(missing)}")


@pytest.fixture
async def topics(broker: SandboxBroker) -> TopicSettings:
    """Topic names of this test only, created as the platform would (tracking excluded:
    the service creates that one itself)."""
    # The control topic too: a pause or a hint of one test never reaches another's service.
    names = prefixed_topics(f"t{next(_counter)}")
    await create_topics(broker.bootstrap_servers, [
        (names.orders_created, PARTITIONS, None), (names.status, PARTITIONS, None),
        (names.print_files_ready, PARTITIONS, None), (names.dead_letter, PARTITIONS, None),
    ])
    return names


def service_env(broker: SandboxBroker, topics: TopicSettings, **vendor_urls: str) -> dict[str, str]:
    """The ORDERFLOW_* environment a deployment would set, pointed at the sandbox, with quick
    polling and a short shutdown grace so tests stay fast."""
    return {
        **sandbox_env(broker.bootstrap_servers, topics, vendor_urls, abilities=broker.abilities),
        "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "0.2",
        "ORDERFLOW_POLL__MAX_INTERVAL_S": "1",
        "ORDERFLOW_POLL__TRACKING_INTERVAL_S": "1",
        "ORDERFLOW_SHUTDOWN_GRACE_S": "5",
    }


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@contextlib.asynccontextmanager
async def running_service(broker: SandboxBroker, topics: TopicSettings,
                          settings: Settings) -> AsyncIterator[tuple[Application, OutputReader]]:
    """The service and a reader of its output topics (status, print files), both started;
    on the way out the reader stops, then the service (drained, committed)."""
    app = Application(settings)
    reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
    await app.start()
    await reader.start()
    try:
        yield app, reader
    finally:
        await reader.stop()
        await app.stop()


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


class EnginePair:
    """What the engine keeps of one pair between submits, for tests that call an adapter
    directly: the intent to create it records (in the tracking topic) before each create."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.intent_at: float | None = None
        self.intents = 0
        self._clock = clock

    def state(self) -> PairState:
        return PairState(intent_at=self.intent_at, record_intent=self._record)

    async def _record(self) -> None:
        self.intent_at = self._clock()
        self.intents += 1
