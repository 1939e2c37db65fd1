"""Output events to their topics, keyed by order_id; returns once the broker has them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from orderflow.config.settings import TopicSettings
from orderflow.consumer import tracing
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.transitions import OutputEvent
from orderflow.contracts.events import OrderPrintFilesReady, wire_json


class Publisher:
    """Publishes output events to their topics, keyed by order id, and counts them."""

    def __init__(self, producer: AIOKafkaProducer, topics: TopicSettings, metrics: Metrics) -> None:
        self._producer = producer
        self._topics = topics
        self._metrics = metrics

    def topic_of(self, event: OutputEvent) -> str:
        if isinstance(event, OrderPrintFilesReady):
            return self._topics.print_files_ready
        return self._topics.status

    async def publish(self, events: Sequence[OutputEvent]) -> None:
        """Send all, then wait for every acknowledgement (raises if any failed)."""
        pending = []
        for event in events:
            topic = self.topic_of(event)
            key = event.order_id.encode()
            with tracing.sending(topic, key) as headers:  # its traceparent, with tracing on
                pending.append((topic, await self._producer.send(
                    topic, wire_json(event), key=key, headers=headers or None)))
        await asyncio.gather(*(future for _, future in pending))
        for topic, _ in pending:
            self._metrics.events_published.labels(topic).inc()
