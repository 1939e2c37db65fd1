"""The committed Grafana dashboard is what deploy/grafana/generate.py writes, and every panel
the issue asks for is on it, querying only metrics the service exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

from deploy_support import DEPLOY

GENERATOR = DEPLOY / "grafana" / "generate.py"
DASHBOARD = DEPLOY / "grafana" / "orderflow.json"

# What the service exports (orderflow/consumer/metrics.py, contract names first) and the
# prometheus_client process collector.
EXPORTED = {
    "orderflow_events_consumed_total", "orderflow_events_published_total",
    "orderflow_vendor_requests_total", "orderflow_vendor_request_duration_seconds_bucket",
    "orderflow_vendor_orders_total", "orderflow_jobs_in_flight", "orderflow_vendor_paused",
    "orderflow_order_to_print_files_seconds_bucket", "orderflow_dead_letters_total",
    "orderflow_consumer_lag", "orderflow_partitions_owned", "orderflow_partitions_restored",
    "orderflow_last_progress_timestamp_seconds", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "orderflow_jobs_waiting", "orderflow_kafka_errors_total",
    "orderflow_tracking_restore_seconds_sum", "orderflow_tracking_restore_seconds_count",
    "orderflow_webhook_deliveries_total",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict]:  # type: ignore[type-arg]
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_committed_json_is_the_generators_output() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_panels_cover_what_operators_watch() -> None:
    by_title = {p["title"]: p for p in panels()}
    needed = {
        "Intake rate by result": "orderflow_events_consumed_total",
        "Consumer lag per partition": "orderflow_consumer_lag",
        "Vendor request rate by outcome": "orderflow_vendor_requests_total",
        "Vendor error ratio": "orderflow_vendor_requests_total",
        "Vendor request latency p50 / p95 / p99":
            "orderflow_vendor_request_duration_seconds_bucket",
        "Jobs in flight per vendor and kind": "orderflow_jobs_in_flight",
        "Vendor order outcomes": "orderflow_vendor_orders_total",
        "Time from order to print files p50 / p95 / p99":
            "orderflow_order_to_print_files_seconds_bucket",
        "Dead letters by reason": "orderflow_dead_letters_total",
        "Process CPU": "process_cpu_seconds_total",
        "Process memory (resident)": "process_resident_memory_bytes",
        "Jobs waiting per vendor (backlog)": "orderflow_jobs_waiting",
        "Vendors held back": "orderflow_vendor_paused",
        "Kafka errors by stage": "orderflow_kafka_errors_total",
        "Tracking restore time per replica": "orderflow_tracking_restore_seconds_sum",
        "Slowest replica's last progress": "orderflow_last_progress_timestamp_seconds",
    }
    for title, metric in needed.items():
        assert title in by_title, f"missing panel {title!r}"
        assert any(metric in t["expr"] for t in by_title[title]["targets"])
    latency = [t["expr"] for t in by_title["Vendor request latency p50 / p95 / p99"]["targets"]]
    quantiles = [re.findall(r"histogram_quantile\(([\d.]+)", e) for e in latency]
    assert quantiles == [["0.5"], ["0.95"], ["0.99"]]
    assert all("by (vendor, le)" in e for e in latency)


def test_queries_use_only_exported_metrics_and_the_template_variables() -> None:
    board = dashboard()
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job", "pod"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            expr = target["expr"]
            used = set(re.findall(r"\b((?:orderflow|process)_[a-z_]+)\b", expr))
            scrape_health = re.fullmatch(
                r'sum\(up\{namespace=~"\$namespace", job=~"\$job"\}\) or vector\(0\)', expr)
            assert (used or scrape_health) and used <= EXPORTED, f"{panel['title']}: {used - EXPORTED}"
            for selector in re.findall(r"\b(?:orderflow|process)_[a-z_]+\{([^}]*)\}", expr):
                for label in ("namespace", "job", "pod"):
                    assert f'{label}=~"${label}"' in selector, f"{panel['title']}: {expr}"
