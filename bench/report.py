"""The benchmark's report: the rows, the ratios pipeline/ceiling, medians across rounds."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orderflow.sandbox.simulators.defaults import VENDORS

RESULTS = Path(__file__).resolve().parent / "results"


ROWS: list[tuple[str, str, str]] = [
    # (figure, label, format)
    ("orders_per_s", "pipeline: orders/s (all pairs terminal / wall)", "{:.1f}"),
    ("pairs_per_s", "pipeline: pairs/s", "{:.1f}"),
    ("wall_s", "pipeline: wall s, first produce -> last terminal", "{:.1f}"),
    ("intake_orders_per_s", "intake: orders/s accepted into tracking", "{:.0f}"),
    ("latency_all_p50_s", "burst latency produce -> completed, per pair, p50 s", "{:.2f}"),
    ("latency_all_p95_s", "burst latency produce -> completed, per pair, p95 s", "{:.2f}"),
    *[(f"latency_{v}_{q}_s", f"  {v} pairs {q} s", "{:.2f}") for v in VENDORS for q in ("p50", "p95")],
    ("latency_order_p50_s", "burst latency per order (its last pair), p50 s", "{:.2f}"),
    ("latency_order_p95_s", "burst latency per order (its last pair), p95 s", "{:.2f}"),
    ("probe_latency_all_p50_s", "paced latency produce -> completed, per pair, p50 s", "{:.2f}"),
    ("probe_latency_all_p95_s", "paced latency produce -> completed, per pair, p95 s", "{:.2f}"),
    *[(f"probe_latency_{v}_{q}_s", f"  {v} pairs {q} s", "{:.2f}") for v in VENDORS for q in ("p50", "p95")],
    ("probe_latency_order_p50_s", "paced latency per order (its last pair), p50 s", "{:.2f}"),
    ("probe_latency_order_p95_s", "paced latency per order (its last pair), p95 s", "{:.2f}"),
    ("vendor_requests_per_order", "vendor requests per order", "{:.2f}"),
    *[(f"vendor_requests_per_pair_{v}", f"  {v} requests per pair", "{:.2f}") for v in VENDORS],
    ("vendor_requests_per_s", "pipeline: vendor requests/s (simulator ledgers)", "{:.0f}"),
    *[(f"vendor_requests_per_s_{v}", f"  {v}, while it had work", "{:.0f}") for v in VENDORS],
    *[(f"client_request_mean_ms_{v}", f"  {v}: mean request as the service saw it, ms", "{:.0f}")
      for v in VENDORS],
    ("consume_records_per_s", "ceiling: raw aiokafka consume, records/s", "{:.0f}"),
    ("validate_records_per_s", "  (CPU only: order.created validation, records/s)", "{:.0f}"),
    ("http_requests_per_s", "ceiling: raw aiohttp requests/s, all vendors at once", "{:.0f}"),
    *[(f"http_requests_per_s_{v}", f"  {v}", "{:.0f}") for v in VENDORS],
    ("http_ideal_requests_per_s", "  (ideal: vendors x concurrency / latency)", "{:.0f}"),
    ("ratio_orders_to_consume", "ratio: pipeline orders/s / consume records/s", "{:.3f}"),
    ("ratio_intake_to_consume", "ratio: intake orders/s / consume records/s", "{:.3f}"),
    ("ratio_requests_to_http", "ratio: pipeline vendor req/s / HTTP ceiling req/s", "{:.2f}"),
    *[(f"ratio_requests_to_http_{v}", f"  {v}", "{:.2f}") for v in VENDORS],
    ("orders_per_s_http_bound", "bound: orders/s that fill the first vendor's ceiling", "{:.1f}"),
    ("ratio_orders_to_http_bound", "ratio: pipeline orders/s / that bound", "{:.2f}"),
    ("kafka_hop_p50_s", "floor: one Kafka hop, produce -> consume, p50 s", "{:.3f}"),
    ("kafka_hop_p95_s", "floor: one Kafka hop, produce -> consume, p95 s", "{:.3f}"),
    ("service_cpu_ms_per_order", "service CPU ms per order", "{:.2f}"),
    ("cpu_pct_service", "CPU % of one core during the burst: service", "{:.0f}"),
    ("cpu_peak_pct_service", "  service, busiest second", "{:.0f}"),
    ("cpu_pct_simulators", "  simulators", "{:.0f}"),
    ("cpu_pct_broker", "  broker", "{:.0f}"),
    ("cpu_pct_bench", "  bench (producer, reader)", "{:.0f}"),
]


def add_ratios(figures: dict[str, Any]) -> None:
    def div(a: Any, b: Any) -> float | None:
        return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None

    figures["ratio_orders_to_consume"] = div(figures.get("orders_per_s"),
                                             figures.get("consume_records_per_s"))
    figures["ratio_intake_to_consume"] = div(figures.get("intake_orders_per_s"),
                                             figures.get("consume_records_per_s"))
    figures["ratio_requests_to_http"] = div(figures.get("vendor_requests_per_s"),
                                            figures.get("http_requests_per_s"))
    bounds = []
    for vendor in VENDORS:
        figures[f"ratio_requests_to_http_{vendor}"] = div(figures.get(f"vendor_requests_per_s_{vendor}"),
                                                          figures.get(f"http_requests_per_s_{vendor}"))
        # The orders/s at which this vendor's share of requests fills its HTTP ceiling.
        per_order = div(figures.get(f"vendor_requests_{vendor}"), figures.get("orders"))
        bound = div(figures.get(f"http_requests_per_s_{vendor}"), per_order)
        figures[f"orders_per_s_bound_{vendor}"] = bound
        if bound is not None:
            bounds.append(bound)
    figures["orders_per_s_http_bound"] = min(bounds, default=None)
    figures["ratio_orders_to_http_bound"] = div(figures.get("orders_per_s"),
                                                figures.get("orders_per_s_http_bound"))


def medians(rounds: list[dict[str, Any]]) -> dict[str, float]:
    keys = {k for r in rounds for k, v in r.items() if isinstance(v, int | float)}
    found = {}
    for key in sorted(keys):
        values = [r[key] for r in rounds if isinstance(r.get(key), int | float)]
        if values:
            found[key] = statistics.median(values)
    return found


def render_table(rounds: list[dict[str, Any]], median: Mapping[str, float]) -> str:
    def show(value: Any, fmt: str) -> str:
        return fmt.format(value) if isinstance(value, int | float) else "-"

    width = max(len(label) for _, label, _ in ROWS)
    head = f"{'':<{width}}  {'median':>9}  " + "  ".join(f"{f'r{i + 1}':>8}" for i in range(len(rounds)))
    lines = [head, "-" * len(head)]
    for key, label, fmt in ROWS:
        if key not in median and all(key not in r for r in rounds):
            continue
        cells = "  ".join(f"{show(r.get(key), fmt):>8}" for r in rounds)
        lines.append(f"{label:<{width}}  {show(median.get(key), fmt):>9}  {cells}")
    return "\n".join(lines)
