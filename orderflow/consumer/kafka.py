"""Kafka clients built from the settings, and the checks done at start-up.

Every start-up failure that a setting or the cluster's shape explains comes out as a
`StartupError` whose one-line message names the variable or topic to look at; the command
line prints it and exits 2. A client library traceback names neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.transaction import InitProducerIdRequest

from orderflow.config.settings import KafkaSettings, TopicSettings, env_name
from orderflow.consumer.backoff import RetryPause
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics

log = get_logger(__name__)
T = TypeVar("T")


class StartupError(Exception):
    """The service cannot start as configured; the message is one line naming the cause."""


class TopicError(StartupError):
    """A topic is missing or shaped wrongly; the message names the topics involved."""


# Error codes of CreateTopics that mean the topic is there after all (another replica
# created it first).
_TOPIC_ALREADY_EXISTS = 36


async def retry_kafka(attempt: Callable[[], Awaitable[T]], *, what: str, label: str,
                      metrics: Metrics, pause: RetryPause | None = None,
                      still_wanted: Callable[[], bool] | None = None) -> T | None:
    """`attempt()` until it succeeds. A KafkaError (a broker stall, a lost coordinator) is
    weather, not fatal: counted (`orderflow_kafka_errors_total{operation=label}`), logged,
    and tried again after a pause. Returns None, without trying again, once `still_wanted()`
    says the result is no longer wanted (its partition handed over). The one retry loop of
    the service's Kafka writes and reads."""
    pause = pause or RetryPause()
    while True:
        try:
            return await attempt()
        except KafkaError as exc:
            metrics.kafka_errors.labels(label).inc()
            if still_wanted is not None and not still_wanted():
                log.warning(f"{what} failed before hand-over", error=str(exc))
                return None
            delay = pause.take()
            log.warning(f"{what} failed, retrying", error=str(exc),
                        error_class=type(exc).__name__, retry_in_s=delay)
            await asyncio.sleep(delay)


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=kafka.ssl_cafile)
    if kafka.security_protocol.startswith("SASL"):
        # load_settings has checked that mechanism, user and password are all set.
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def make_producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(kafka),
        acks="all",
        enable_idempotence=kafka.enable_idempotence,
        linger_ms=2,
        request_timeout_ms=30_000,
        # What orderflow writes never exceeds what the brokers take: the producer refuses
        # a larger record at once instead of sending it to be refused.
        max_request_size=kafka.max_message_bytes,
    )


async def wait_for_brokers(kafka: KafkaSettings, on_retry: Callable[[str, float], None],
                           *, clock: Callable[[], float] = time.monotonic) -> None:
    """Return once a broker answers; meanwhile call `on_retry(error, waited_s)` after each
    failed try. Raises StartupError naming ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS after
    `startup_timeout_s`."""
    started = clock()
    pause = RetryPause()
    while True:
        client = AIOKafkaClient(**client_options(kafka), request_timeout_ms=10_000)
        try:
            await client.bootstrap()
            return
        except KafkaError as exc:
            error = str(exc) or type(exc).__name__
        finally:
            await client.close()
        waited = clock() - started
        if waited >= kafka.startup_timeout_s:
            raise StartupError(
                f"no broker of {env_name('kafka', 'bootstrap_servers')}={kafka.bootstrap_servers} "
                f"answered within {env_name('kafka', 'startup_timeout_s')}="
                f"{kafka.startup_timeout_s:g}s ({error})")
        on_retry(error, waited)
        await asyncio.sleep(min(pause.take(), max(0.0, kafka.startup_timeout_s - waited)))


async def check_idempotence(kafka: KafkaSettings) -> None:
    """Ask a broker for a producer id, as an idempotent producer does before its first write.
    A broker that refuses would otherwise fail every write of the running service.
    Raises StartupError naming ORDERFLOW_KAFKA__ENABLE_IDEMPOTENCE."""
    if not kafka.enable_idempotence:
        return
    client = AIOKafkaClient(**client_options(kafka), request_timeout_ms=10_000)
    try:
        await client.bootstrap()
        node = client.get_random_node()
        answer = await client.send(
            node, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000))
        error = for_code(answer.error_code)
        if error.errno != 0:
            raise StartupError(
                f"the broker refuses idempotent producing ({error.__name__}); set "
                f"{env_name('kafka', 'enable_idempotence')}=false for a broker without it")
    except KafkaConnectionError:
        raise  # unreachable again: the caller's wait handles that
    except KafkaError as exc:
        raise StartupError(
            f"the broker refuses idempotent producing ({type(exc).__name__}: {exc}); set "
            f"{env_name('kafka', 'enable_idempotence')}=false for a broker without it") from None
    finally:
        await client.close()


def creation_problem(topic: str, topic_errors: list[Any]) -> str | None:
    """What the broker's answer to CreateTopics says went wrong for `topic`, or None.
    `topic_errors` holds (name, error code, error message[, ...]) per topic."""
    for entry in topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if name != topic or code in (0, _TOPIC_ALREADY_EXISTS):
            continue
        error = for_code(code)
        return f"{error.__name__} (code {code})" + (f": {message}" if message else "")
    return None


async def prepare_topics(kafka: KafkaSettings, topics: TopicSettings) -> int:
    """Check the input topic and create the tracking topic when it is missing (compacted,
    as many partitions as the input) and the control topic (compacted, one partition).
    Returns the input partition count.

    Existence is read from the topic list: some brokers create a topic merely described."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        if topics.orders_created not in existing:
            raise TopicError(f"input topic {topics.orders_created!r} does not exist "
                             f"({env_name('topics', 'orders_created')})")
        partitions = await _partition_count(admin, topics.orders_created)
        if topics.tracking not in existing:
            await _create_compacted(admin, kafka, topics.tracking, partitions, "tracking")
        else:
            tracking_partitions = await _partition_count(admin, topics.tracking)
            if tracking_partitions != partitions:
                raise TopicError(
                    f"tracking topic {topics.tracking!r} has {tracking_partitions} partitions but "
                    f"input topic {topics.orders_created!r} has {partitions}: they must match"
                )
        if topics.control not in existing:
            await _create_compacted(admin, kafka, topics.control, 1, "control")
        return partitions
    finally:
        await admin.close()


async def _create_compacted(admin: AIOKafkaAdminClient, kafka: KafkaSettings, topic: str,
                            partitions: int, which: str) -> None:
    """Create one of orderflow's own compacted topics (`which`: tracking or control), or
    raise TopicError naming the topic, its setting and the broker's error."""
    configs = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    if kafka.tracking_replication_factor >= 2:
        # Written with acks=all: a write is on every replica in sync, and at least this
        # many, so an acknowledged state survives the loss of one broker.
        configs["min.insync.replicas"] = str(min(2, kafka.tracking_replication_factor - 1))
    answer = await admin.create_topics([NewTopic(
        topic, partitions, kafka.tracking_replication_factor, topic_configs=configs)])
    problem = creation_problem(topic, list(getattr(answer, "topic_errors", [])))
    if problem is not None:
        raise TopicError(
            f"creating {which} topic {topic!r} ({env_name('topics', which)}, "
            f"{partitions} partitions, replication "
            f"{env_name('kafka', 'tracking_replication_factor')}="
            f"{kafka.tracking_replication_factor}) failed: {problem}")


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    described = await admin.describe_topics([topic])
    return len(described[0]["partitions"])
