"""Kafka clients built from the settings, and the topic checks done at start-up."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context

from orderflow.config.settings import KafkaSettings, TopicSettings


class TopicError(Exception):
    """A topic is missing or shaped wrongly; the message names the topics involved."""


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=kafka.ssl_cafile)
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism or "PLAIN"
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
    )


async def prepare_topics(kafka: KafkaSettings, topics: TopicSettings) -> int:
    """Check the input topic and create the tracking topic when it is missing (compacted,
    as many partitions as the input). Returns the input partition count.

    Existence is read from the topic list: some brokers create a topic merely described."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if topics.orders_created not in existing:
            raise TopicError(f"input topic {topics.orders_created!r} does not exist")
        partitions = await _partition_count(admin, topics.orders_created)
        if topics.tracking not in existing:
            await admin.create_topics([NewTopic(
                topics.tracking, partitions, kafka.tracking_replication_factor,
                topic_configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            )])
        else:
            tracking_partitions = await _partition_count(admin, topics.tracking)
            if tracking_partitions != partitions:
                raise TopicError(
                    f"tracking topic {topics.tracking!r} has {tracking_partitions} partitions but "
                    f"input topic {topics.orders_created!r} has {partitions}: they must match"
                )
        return partitions
    finally:
        await admin.close()


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    described = await admin.describe_topics([topic])
    return len(described[0]["partitions"])
