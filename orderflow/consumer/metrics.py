"""Every Prometheus object of orderflow, on one injectable registry (tests get their own).

The names in the contract are fixed; labels are ours:
- events_consumed_total{result}: valid | invalid | duplicate | unrouted
- vendor_requests_total{vendor,operation,outcome}: ok | not_found | client_error | auth_error |
  throttled | server_error | timeout | connection_error | cancelled
- vendor_orders_total{vendor,status}: every status announced
- jobs_in_flight{vendor,kind}: kind = submit | poll | cancel
- dead_letters_total{reason}: invalid_utf8 | invalid_json | schema | oversized | empty |
  too_large | internal
"""

from __future__ import annotations

import platform
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import (
    GCCollector as _GCCollector,
)
from prometheus_client import (
    PlatformCollector as _PlatformCollector,
)
from prometheus_client import (
    ProcessCollector as _ProcessCollector,
)

# Vendor calls: tens of milliseconds to the client timeout.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Submissions: under a second, or minutes behind a vendor's outage (300: the SLO's bound).
_SUBMIT_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Print files take seconds to hours.
_PRINT_FILES_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class Metrics:
    """Every metric of the service, in one registry (the names are the contract's)."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 process_collectors: bool = True) -> None:
        # No `_created` series beside every counter and histogram: twice the series for a
        # start time nobody queries (the process start time is its own metric).
        disable_created_metrics()  # type: ignore[no-untyped-call,unused-ignore]
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process_collectors:
            _ProcessCollector(registry=self.registry)
            _PlatformCollector(registry=self.registry)
            _GCCollector(registry=self.registry)
        r = self.registry
        self.events_consumed = Counter(
            "orderflow_events_consumed", "Input records consumed, by result.", ["result"], registry=r)
        self.events_published = Counter(
            "orderflow_events_published", "Output events published, by topic.", ["topic"], registry=r)
        self.vendor_requests = Counter(
            "orderflow_vendor_requests", "HTTP requests to vendors.",
            ["vendor", "operation", "outcome"], registry=r)
        self.vendor_request_duration = Histogram(
            "orderflow_vendor_request_duration_seconds", "Duration of HTTP requests to vendors.",
            ["vendor", "operation"], buckets=_REQUEST_BUCKETS, registry=r)
        self.vendor_orders = Counter(
            "orderflow_vendor_orders", "Statuses announced per vendor.", ["vendor", "status"],
            registry=r)
        self.jobs_in_flight = Gauge(
            "orderflow_jobs_in_flight", "Vendor calls running now.", ["vendor", "kind"], registry=r)
        self.jobs_waiting = Gauge(
            "orderflow_jobs_waiting", "Unfinished jobs in the table, by vendor.", ["vendor"],
            registry=r)
        self.vendor_paused = Gauge(
            "orderflow_vendor_paused",
            "1 while calls to the vendor are held back, by reason: operator (orderflow pause) "
            "or backoff (Retry-After, or failing in a row).",
            ["vendor", "reason"], registry=r)
        self.vendor_budget = Gauge(
            "orderflow_vendor_budget",
            "This replica's share of a vendor's cluster-wide budget, by kind: concurrency | "
            "rate_per_s (the owned share of the input partitions).", ["vendor", "kind"], registry=r)
        self.webhook_deliveries = Counter(
            "orderflow_webhook_deliveries",
            "Webhook deliveries received, by vendor and result: noted | repeat | coalesced | "
            "ignored | unsigned | bad_signature | unreadable | too_large | slow | busy | "
            "kafka_error.",
            ["vendor", "result"], registry=r)
        self.hints = Counter(
            "orderflow_webhook_hints",
            "Webhook hints read from the control topic, by what became of them here: "
            "polled_now | not_waiting | not_here | stale.", ["vendor", "result"], registry=r)
        self.control_records = Counter(
            "orderflow_control_records",
            "Control-topic records acted on, by kind: pause | retry | hint | replayed | unreadable.",
            ["kind"], registry=r)
        self.internal_records_skipped = Counter(
            "orderflow_internal_records_skipped",
            "Records of orderflow's own topics (tracking, control) that this release cannot "
            "read, skipped with a log line naming topic, partition, offset and key.",
            ["topic"], registry=r)
        self.pair_submit = Histogram(
            "orderflow_pair_submit_seconds",
            "From a pair's start (its order consumed, or released by the pair it waited for) "
            "to the vendor accepting it: the submission SLO's indicator.",
            ["vendor"], buckets=_SUBMIT_BUCKETS, registry=r)
        self.order_to_print_files = Histogram(
            "orderflow_order_to_print_files_seconds",
            "Time from the order being placed to its print files being announced.",
            buckets=_PRINT_FILES_BUCKETS, registry=r)
        self.dead_letters = Counter(
            "orderflow_dead_letters", "Input records sent to the dead-letter topic.", ["reason"],
            registry=r)
        self.unknown_provider_lines = Counter(
            "orderflow_unknown_provider_lines",
            "Order lines customized or fulfilled by a provider orderflow does not know (ignored "
            "for routing), by where the provider was named.", ["where"], registry=r)
        self.consumer_lag = Gauge(
            "orderflow_consumer_lag", "Records of the input topic not yet committed.", ["partition"],
            registry=r)
        self.partitions_owned = Gauge(
            "orderflow_partitions_owned", "Input partitions assigned to this replica.", registry=r)
        self.partitions_restored = Gauge(
            "orderflow_partitions_restored", "Owned partitions whose tracking state is restored.",
            registry=r)
        self.tracking_restore_seconds = Histogram(
            "orderflow_tracking_restore_seconds", "Time to rebuild the job table of an assignment.",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r)
        self.tracking_records_restored = Counter(
            "orderflow_tracking_records_restored", "Tracking records read while restoring.",
            registry=r)
        self.kafka_errors = Counter(
            "orderflow_kafka_errors", "Kafka client errors survived, by stage.", ["stage"],
            registry=r)
        self.job_errors = Counter(
            "orderflow_job_errors",
            "Job runs ended by an unexpected error (a bug); the job runs again later.",
            ["vendor"], registry=r)
        self.last_progress = Gauge(
            "orderflow_last_progress_timestamp_seconds",
            "Unix time of the last turn of the intake and scheduler loops.", registry=r)
        self.last_progress.set(time.time())
        # orderflow_build_info{version,python} 1: which release each replica runs (a rollout
        # in progress shows as two versions).
        Info("orderflow_build", "The release of orderflow this replica runs.", registry=r).info(
            {"version": _version(), "python": platform.python_version()})
        # Series that exist before their first event: a dashboard or alert shows 0, not
        # "no data", and increase() sees the first one.
        for result in ("valid", "invalid", "duplicate", "unrouted"):
            self.events_consumed.labels(result)
        for stage in ("intake", "restore", "apply", "control", "webhook"):
            self.kafka_errors.labels(stage)
        for result in ("noted", "repeat", "ignored", "unsigned", "bad_signature", "unreadable",
                       "too_large", "kafka_error", "coalesced", "slow", "busy"):
            self.webhook_deliveries.labels("smake", result)

    # RequestObserver, for the adapters' HTTP sessions
    def observe_request(self, vendor: str, operation: str, outcome: str, seconds: float) -> None:
        self.vendor_requests.labels(vendor, operation, outcome).inc()
        self.vendor_request_duration.labels(vendor, operation).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what tests and the benchmarks read; the
        HTTP endpoint negotiates OpenMetrics and gzip with the scraper)."""
        return generate_latest(self.registry)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("orderflow")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"
