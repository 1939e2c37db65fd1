"""Traces (contract, "Tracing"), with OpenTelemetry's in-memory exporter: one order produced
with a `traceparent` yields one trace holding its consume span and every later run of each
of its pairs, across a restart of the service; output events carry `traceparent`."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaProducer
from conftest import running_service, service_env, settings_from
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orderflow.consumer import tracing
from orderflow.sandbox.outcomes import read_topic
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    assert tracing.start("test", exporters=[exporter])
    try:
        yield exporter
    finally:
        tracing.stop()


async def test_one_trace_per_order_across_a_restart(broker, topics, monkeypatch, spans):
    [event] = sample_orders(1, seed=61, prefix="TRACE", shape="smake")
    order_id = event["order"]["order_id"]
    zakeke = SimulatorServer(ZakekeSimulator(**world.zakeke_options()))
    smake = SimulatorServer(SmakeSimulator(seconds_per_state=1.5, **world.smake_options()))
    reevoo = SimulatorServer(ReevooSimulator())
    async with zakeke, smake, reevoo:
        settings = settings_from(service_env(broker, topics, zakeke=zakeke.base_url,
                                             smake=smake.base_url, reevoo=reevoo.base_url),
                                 monkeypatch)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.orders_created, json.dumps(event).encode(), key=order_id.encode(),
                headers=[("traceparent", f"00-{TRACE_ID}-{UPSTREAM_SPAN}-01".encode())])
        finally:
            await producer.stop()
        pairs = {(order_id, "smake"), (order_id, "reevoo")}
        # First replica: consumes the order and starts the pairs; stopped while Smake produces.
        async with running_service(broker, topics, settings) as (_app, reader):
            for _ in range(300):
                await reader.poll()
                if "in_progress" in reader.outcomes.statuses.get((order_id, "smake"), []):
                    break
            else:
                raise AssertionError("Smake never started producing")
        before_restart = {span.context.span_id for span in spans.get_finished_spans()}
        # Second replica (a restart): restores the pair from its record and follows it on.
        async with running_service(broker, topics, settings) as (_app, reader):
            assert await reader.wait_for(pairs, timeout_s=60)
        await asyncio.sleep(0.2)

    finished = spans.get_finished_spans()
    consume = [s for s in finished if s.kind is SpanKind.CONSUMER
               and s.attributes.get("messaging.kafka.message.key") == order_id]
    assert len(consume) == 1
    [consumed] = consume
    assert format(consumed.context.trace_id, "032x") == TRACE_ID
    assert format(consumed.parent.span_id, "016x") == UPSTREAM_SPAN
    assert consumed.attributes["messaging.system"] == "kafka"
    assert consumed.attributes["messaging.destination.name"] == topics.orders_created
    assert consumed.attributes["messaging.consumer.group.name"] == settings.kafka.group_id

    runs = [s for s in finished if s.attributes.get("orderflow.order_id") == order_id]
    assert {s.attributes["orderflow.vendor"] for s in runs} == {"smake", "reevoo"}
    assert all(format(s.context.trace_id, "032x") == TRACE_ID for s in runs)
    # Every run is the consume span's child, and linked to it, on either side of the restart.
    assert all(s.parent.span_id == consumed.context.span_id for s in runs)
    assert all(link.context.span_id == consumed.context.span_id for s in runs for link in s.links)
    after_restart = [s for s in runs if s.context.span_id not in before_restart]
    assert after_restart, "no run of the restored pair"
    # The vendor's HTTP call inside a run (aiohttp-client instrumentation).
    http = [s for s in finished if s.kind is SpanKind.CLIENT and s.parent is not None
            and s.parent.span_id in {r.context.span_id for r in runs}]
    assert http and all(format(s.context.trace_id, "032x") == TRACE_ID for s in http)

    # Output events carry the trace in their `traceparent` header.
    records = [r for r in await read_topic(broker.bootstrap_servers, topics.status)
               if r.key == order_id.encode()]
    assert records
    for record in records:
        header = dict(record.headers).get("traceparent")
        assert header is not None and header.decode().split("-")[1] == TRACE_ID


def test_tracing_is_asked_for_by_opentelemetrys_own_environment() -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                               "OTEL_SDK_DISABLED": "true"})
