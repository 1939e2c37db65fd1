"""Traces (contract, "Tracing"), by OpenTelemetry's messaging conventions, with the `otel`
extra and OpenTelemetry's own environment variables; otherwise nothing of it runs (every
function here is a no-op and no OpenTelemetry module is imported).

A pair's work runs minutes to days after its order was consumed, on whichever replica owns
it then: an instrumented consumer would give orphan spans. So the context travels with the
pair instead. The consume span continues the input record's W3C `traceparent`; its own
`traceparent` is kept in the pair's tracking record (`Job.trace`); each run of the pair's
job, on any replica and after any restart, is a span of that trace (its child, and linked
to it), with the vendor's HTTP call inside (OpenTelemetry's aiohttp-client instrumentation);
each output event is sent in a producer span whose `traceparent` travels in its headers;
log lines carry `trace_id` and `span_id`.

Turned on by `OTEL_TRACES_EXPORTER` (`console`, `otlp`; `none` is off) or an OTLP endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless
`OTEL_SDK_DISABLED=true`. The service is named by `OTEL_SERVICE_NAME` (default orderflow).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import structlog

log = structlog.get_logger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"


class _Active:
    """The SDK's tracer provider, a tracer, and the propagator, once tracing is on."""

    def __init__(self, exporters: Sequence[Any], version: str) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME")
                                    or "orderflow", "service.version": version})
        self.provider = TracerProvider(resource=resource)
        for exporter in exporters:
            # The console exporter writes each span as it ends (what a person watching, or a
            # harness reading stdout, expects); the others in batches, off the event loop.
            simple = type(exporter).__name__ in ("ConsoleSpanExporter", "InMemorySpanExporter")
            self.provider.add_span_processor(
                SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("orderflow", version)
        self.propagator = TraceContextTextMapPropagator()
        self.trace = trace
        self.instrumentor: Any = None
        try:
            from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
        except ImportError:
            log.warning("tracing without vendor HTTP spans: "
                        "opentelemetry-instrumentation-aiohttp-client is not installed")
        else:
            self.instrumentor = AioHttpClientInstrumentor()
            self.instrumentor.instrument(tracer_provider=self.provider)

    def context_of(self, traceparent: str | None) -> Any:
        if not traceparent:
            return None
        return self.propagator.extract({TRACEPARENT: traceparent})

    def current_traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier)
        return carrier.get(TRACEPARENT)

    def shutdown(self) -> None:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
        self.provider.shutdown()


_active: _Active | None = None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether OpenTelemetry's environment asks for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = [e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if exporters:
        return exporters != ["none"]
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _exporters_from_environment() -> list[Any]:
    names = [e.strip() for e in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
             if e.strip() and e.strip() != "none"]
    made: list[Any] = []
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter
            made.append(ConsoleSpanExporter())
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            made.append(OTLPSpanExporter())  # endpoint, headers, ...: OTEL_EXPORTER_OTLP_*
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER ignored", exporter=name)
    return made


def start(version: str, exporters: Sequence[Any] | None = None) -> bool:
    """Turn tracing on when the environment asks for it (or `exporters` are given, as tests
    do) and the `otel` extra is installed. Returns whether it is on."""
    global _active
    if _active is not None:
        return True
    if exporters is None and not wanted():
        return False
    try:
        chosen = list(exporters) if exporters is not None else _exporters_from_environment()
        _active = _Active(chosen, version)
    except ImportError as exc:
        log.warning("traces asked for by the OTEL_* environment, but the otel extra is not "
                    "installed (pip install 'orderflow[otel]'): no traces", error=str(exc))
        return False
    log.info("tracing on", exporters=[type(e).__name__ for e in chosen])
    return True


def stop() -> None:
    """Flush and end tracing (the last spans are exported)."""
    global _active
    if _active is not None:
        active, _active = _active, None
        active.shutdown()


@contextlib.contextmanager
def consuming(topic: str, partition: int, offset: int, key: bytes | None,
              headers: Sequence[tuple[str, bytes]] | None, group: str) -> Iterator[Any]:
    """The span of one consumed input record, continuing its `traceparent`. Yields the span
    (None when tracing is off); `traceparent_of_current()` inside it is what a pair keeps."""
    if _active is None:
        yield None
        return
    carrier = {name: value.decode("latin-1") for name, value in headers or ()
               if name in (TRACEPARENT, TRACESTATE)}
    parent = _active.propagator.extract(carrier) if carrier else None
    from opentelemetry.trace import SpanKind
    with _active.tracer.start_as_current_span(
            f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
                "messaging.consumer.group.name": group,
                "messaging.kafka.offset": offset,
                **({"messaging.kafka.message.key": key.decode("utf-8", "replace")}
                   if key else {}),
            }) as span:
        yield span


def traceparent_of_current() -> str | None:
    """The W3C `traceparent` of the current span (None when off or outside a span)."""
    return None if _active is None else _active.current_traceparent()


@contextlib.contextmanager
def running(name: str, traceparent: str | None, **attributes: Any) -> Iterator[Any]:
    """The span of one run of a pair's job: a child of the pair's consume span (its kept
    `traceparent`), linked to it, however much later and wherever it runs."""
    if _active is None:
        yield None
        return
    parent = _active.context_of(traceparent)
    links = []
    if parent is not None:
        from opentelemetry.trace import Link
        links.append(Link(_active.trace.get_current_span(parent).get_span_context()))
    with _active.tracer.start_as_current_span(
            name, context=parent, links=links,
            attributes={f"orderflow.{k}": v for k, v in attributes.items() if v is not None},
    ) as span:
        yield span


@contextlib.contextmanager
def sending(topic: str, key: bytes) -> Iterator[list[tuple[str, bytes]]]:
    """The producer span of one output event; yields the headers that carry its context."""
    if _active is None:
        yield []
        return
    from opentelemetry.trace import SpanKind
    with _active.tracer.start_as_current_span(
            f"send {topic}", kind=SpanKind.PRODUCER, attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": topic,
                "messaging.kafka.message.key": key.decode("utf-8", "replace"),
            }):
        carrier: dict[str, str] = {}
        _active.propagator.inject(carrier)
        yield [(name, value.encode()) for name, value in carrier.items()]


def add_trace_ids(logger: Any, method: str,
                  event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` of the current span on each line."""
    if _active is not None:
        context = _active.trace.get_current_span().get_span_context()
        if context.is_valid:
            event.setdefault("trace_id", format(context.trace_id, "032x"))
            event.setdefault("span_id", format(context.span_id, "016x"))
    return event
