"""Builds the orderflow Grafana dashboard (deploy/grafana/orderflow.json).

    python deploy/grafana/generate.py            # rewrite orderflow.json
    python deploy/grafana/generate.py --check    # exit 1 if orderflow.json is out of date

Edit the panels here, never the JSON: tests/deploy/test_dashboard_json.py fails when the
committed JSON differs from what this script writes, and tests/deploy/test_dashboard_live.py
asks a real Prometheus scraping `orderflow run` for every query below.

Built with grafana-foundation-sdk (Grafana Labs' typed builders), pinned in the dev extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
)

OUTPUT = Path(__file__).with_name("orderflow.json")
UID = "orderflow-overview"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every orderflow series on the dashboard is narrowed by the three template variables.
SEL = 'namespace=~"$namespace", job=~"$job", pod=~"$pod"'
RATE = "$__rate_interval"

# Vendor request outcomes that are not failures: a 404 answers the lookup made before every
# create, and `cancelled` is our own shutdown. The Prometheus rules use the same split.
NOT_ERRORS = "ok|not_found|cancelled"


def query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .range()
        .datasource(DATASOURCE)
    )


def panel(title: str, description: str, unit: str, *queries: prometheus.Dataquery,
          width: int = 12, stacked: bool = False, min_zero: bool = True) -> timeseries.Panel:
    built = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .fill_opacity(10 if not stacked else 40)
        .line_width(1)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    if min_zero:
        built = built.min(0)
    if stacked:
        built = built.stacking(StackingConfig().mode(StackingMode.NORMAL))
    for q in queries:
        built = built.with_target(q)
    return built


def big_number(title: str, description: str, unit: str, expr: str,
               amber: float, red: float) -> stat.Panel:
    """One figure, green below `amber`, amber below `red`, red from there: the health row."""
    steps = [model.Threshold(value=None, color="green"), model.Threshold(value=amber, color="orange"),
             model.Threshold(value=red, color="red")]
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(4)
        .height(4)
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.AREA)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps))
        .with_target(query(expr, title))
    )


def health_row() -> list[stat.Panel]:
    """Is it healthy? Green everywhere: yes. Each figure names the alert that watches it."""
    ended = f'orderflow_vendor_orders_total{{{SEL}, status=~"completed|failed|rejected|timed_out"}}'
    bad = f'orderflow_vendor_orders_total{{{SEL}, status=~"failed|rejected|timed_out"}}'
    return [
        big_number("Replicas scraped", "orderflow targets Prometheus scrapes successfully "
                   "(OrderflowDown, OrderflowAbsent). Red at 0.", "short",
                   f'sum(up{{namespace=~"$namespace", job=~"$job"}}) or vector(0)', -1, 0.5)
        .thresholds(dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps([
            model.Threshold(value=None, color="red"), model.Threshold(value=1, color="green")])),
        big_number("Slowest replica's last progress", "Seconds since the intake or scheduler "
                   "of the least lively replica turned over (OrderflowNoProgress at 60 s).", "s",
                   f"max(time() - orderflow_last_progress_timestamp_seconds{{{SEL}}})", 30, 60),
        big_number("Pairs ending badly (30m)", "Share of pairs ended failed, rejected or timed "
                   "out in the last 30 minutes, all vendors (OrderflowBadOutcomesHigh per vendor).",
                   "percentunit",
                   f"(sum(increase({bad}[30m])) or vector(0)) / clamp_min(sum(increase({ended}[30m])), 1)",
                   0.05, 0.1),
        big_number("Vendors held back", "Vendors whose calls are held: paused by an operator or "
                   "backing off (OrderflowVendorHeldBack).", "short",
                   f"count(max by (vendor) (orderflow_vendor_paused{{{SEL}}}) > 0) or vector(0)",
                   1, 3),
        big_number("Consumer lag", "Input records not yet consumed, all partitions "
                   "(OrderflowConsumerLagGrowing).", "short",
                   f"sum(max by (partition) (orderflow_consumer_lag{{{SEL}}})) or vector(0)",
                   1000, 10000),
        big_number("Kafka errors (5m)", "Kafka errors survived in the last 5 minutes, every stage "
                   "(OrderflowKafkaErrors when they last).", "short",
                   f"sum(increase(orderflow_kafka_errors_total{{{SEL}}}[5m])) or vector(0)", 1, 50),
    ]


def kafka_row() -> list[timeseries.Panel]:
    return [
        panel(
            "Kafka errors by stage",
            "Kafka errors the service survived by retrying, per stage: intake (reading input), "
            "restore, apply (recording a job's progress), control (the control topic), webhook "
            "(noting a delivery).",
            "short",
            query(f"sum by (stage) (increase(orderflow_kafka_errors_total{{{SEL}}}[{RATE}]))",
                  "{{stage}}"),
            stacked=True,
        ),
        panel(
            "Tracking restore time per replica",
            "Mean time a replica took to rebuild its job table from the tracking topic after "
            "its assignments; it is not ready meanwhile. About 16 s for a million waiting pairs "
            "(bench/README.md).",
            "s",
            query(f"max by (pod) (orderflow_tracking_restore_seconds_sum{{{SEL}}} "
                  f"/ orderflow_tracking_restore_seconds_count{{{SEL}}})", "{{pod}}"),
        ),
        panel(
            "Smake webhook deliveries by result",
            "Deliveries to POST /webhooks/smake: noted (a hint for the owning replica), repeat, "
            "ignored, and refused (unsigned, bad_signature, unreadable, too_large). Refusals "
            "above zero: a wrong ORDERFLOW_SMAKE__WEBHOOK_TOKEN, or someone forging.",
            "ops",
            query(f'sum by (result) (rate(orderflow_webhook_deliveries_total{{{SEL}}}[{RATE}]))',
                  "{{result}}"),
            stacked=True,
        ),
    ]


def variable(name: str, label: str, expr: str, *, multi: bool) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(expr)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".*")
        .multi(multi)
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def intake_row() -> list[timeseries.Panel]:
    return [
        panel(
            "Intake rate by result",
            "order.created records consumed per second: valid, invalid (dead-lettered) and "
            "duplicate (an order already tracked).",
            "ops",
            query(f"sum by (result) (rate(orderflow_events_consumed_total{{{SEL}}}[{RATE}]))",
                  "{{result}}"),
            stacked=True,
        ),
        panel(
            "Events published by topic",
            "Status, print-file and dead-letter events written per second.",
            "ops",
            query(f"sum by (topic) (rate(orderflow_events_published_total{{{SEL}}}[{RATE}]))",
                  "{{topic}}"),
        ),
        panel(
            "Consumer lag per partition",
            "Records of the input topic not yet consumed, per partition, as the replica that "
            "owns the partition sees it.",
            "short",
            query(f"max by (partition) (orderflow_consumer_lag{{{SEL}}})",
                  "partition {{partition}}"),
        ),
        panel(
            "Dead letters by reason",
            "Input records sent to the dead-letter topic, per reason. Anything above zero "
            "means upstream produced events orderflow cannot read.",
            "short",
            query(f"sum by (reason) (increase(orderflow_dead_letters_total{{{SEL}}}[{RATE}]))",
                  "{{reason}}"),
            stacked=True,
        ),
        panel(
            "Partitions owned and restored per replica",
            "A replica is ready when every partition it owns is restored from the tracking "
            "topic. Owned above restored for long means a slow or stuck restore.",
            "short",
            query(f"sum by (pod) (orderflow_partitions_owned{{{SEL}}})", "{{pod}} owned", "A"),
            query(f"sum by (pod) (orderflow_partitions_restored{{{SEL}}})", "{{pod}} restored",
                  "B"),
        ),
        panel(
            "Seconds since last progress",
            "Age of the latest intake or scheduler turn per replica. Above "
            "ORDERFLOW_HEALTH__STALL_AFTER_S (120 s by default) the replica is stuck and "
            "/healthz answers 503 (it already does when either loop alone stalls).",
            "s",
            query(f"time() - max by (pod) (orderflow_last_progress_timestamp_seconds{{{SEL}}})",
                  "{{pod}}"),
        ),
    ]


def vendor_row() -> list[timeseries.Panel]:
    requests = f"orderflow_vendor_requests_total{{{SEL}}}"
    errors = f'orderflow_vendor_requests_total{{{SEL}, outcome!~"{NOT_ERRORS}"}}'
    total = f"sum by (vendor) (rate({requests}[{RATE}]))"
    buckets = f"orderflow_vendor_request_duration_seconds_bucket{{{SEL}}}"
    return [
        panel(
            "Vendor request rate by outcome",
            "HTTP requests to each vendor per second, by outcome.",
            "reqps",
            query(f"sum by (vendor, outcome) (rate({requests}[{RATE}]))",
                  "{{vendor}} {{outcome}}"),
            stacked=True,
        ),
        panel(
            "Vendor error ratio",
            "Share of requests per vendor whose outcome is an error (anything but ok, "
            "not_found and cancelled). Zero while requests all succeed.",
            "percentunit",
            query(f"(sum by (vendor) (rate({errors}[{RATE}])) or 0 * {total}) / {total}",
                  "{{vendor}}"),
        ),
        panel(
            "Vendor request latency p50 / p95 / p99",
            "Duration of vendor HTTP requests per vendor.",
            "s",
            *[
                query(f"histogram_quantile({q}, sum by (vendor, le) (rate({buckets}[{RATE}])))",
                      f"{{{{vendor}}}} p{int(q * 100)}", ref)
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
        ),
        panel(
            "Vendors held back",
            "1 while calls to a vendor are held: reason operator (`orderflow pause`, until "
            "`orderflow resume`), or backoff (its Retry-After after a 429, or 5 failures in a "
            "row, when one call at a time probes it until it answers).",
            "short",
            query(f"max by (vendor, reason) (orderflow_vendor_paused{{{SEL}}})",
                  "{{vendor}} {{reason}}"),
        ),
        panel(
            "Jobs waiting per vendor (backlog)",
            "Pairs not finished, per vendor, across replicas: submissions due and orders the "
            "vendor is working on. Grows during a pause or an outage; Smake's pairs wait days.",
            "short",
            query(f"sum by (vendor) (orderflow_jobs_waiting{{{SEL}}})", "{{vendor}}"),
        ),
        panel(
            "Jobs in flight per vendor and kind",
            "Submits and polls running right now, against the per-vendor concurrency limit.",
            "short",
            query(f"sum by (vendor, kind) (orderflow_jobs_in_flight{{{SEL}}})",
                  "{{vendor}} {{kind}}"),
        ),
        panel(
            "Vendor order outcomes",
            "Status changes of (order, vendor) pairs per second: submitted, in_progress, and "
            "the terminal completed, failed, rejected, cancelled, timed_out.",
            "ops",
            query(f"sum by (vendor, status) (rate(orderflow_vendor_orders_total{{{SEL}}}[{RATE}]))",
                  "{{vendor}} {{status}}"),
            stacked=True,
        ),
        panel(
            "Time from order to print files p50 / p95 / p99",
            "From the order's placement to its Zakeke print files being announced.",
            "s",
            *[
                query(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(orderflow_order_to_print_files_seconds_bucket{{{SEL}}}[{RATE}])))",
                    f"p{int(q * 100)}", ref)
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
        ),
    ]


def process_row() -> list[timeseries.Panel]:
    return [
        panel(
            "Process CPU",
            "CPU used per replica, in cores. Compare with the container's CPU request.",
            "short",
            query(f"sum by (pod) (rate(process_cpu_seconds_total{{{SEL}}}[{RATE}]))", "{{pod}}"),
        ),
        panel(
            "Process memory (resident)",
            "Resident memory per replica. Compare with the container's memory limit.",
            "bytes",
            query(f"sum by (pod) (process_resident_memory_bytes{{{SEL}}})", "{{pod}}"),
        ),
    ]


def build() -> dict[str, object]:
    board = (
        dashboard.Dashboard("orderflow")
        .uid(UID)
        .description("orderflow: intake from Kafka, vendor calls (Zakeke, Smake, Reevoo), "
                     "outcomes and the process. Built by deploy/grafana/generate.py.")
        .tags(["orderflow", "kafka"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(variable("namespace", "Namespace",
                                "label_values(orderflow_partitions_owned, namespace)",
                                multi=False))
        .with_variable(variable(
            "job", "Job",
            'label_values(orderflow_partitions_owned{namespace=~"$namespace"}, job)',
            multi=False))
        .with_variable(variable(
            "pod", "Replica",
            'label_values(orderflow_partitions_owned{namespace=~"$namespace", job=~"$job"}, pod)',
            multi=True))
    )
    next_id = 1  # stable panel ids, so links to a panel (viewPanel=N) keep working
    for title, panels in (("Health", health_row()), ("Intake", intake_row()),
                          ("Vendors", vendor_row()), ("Kafka", kafka_row()),
                          ("Process", process_row())):
        board = board.with_row(dashboard.Row(title).id(next_id))
        next_id += 1
        for p in panels:
            board = board.with_panel(p.id(next_id))
            next_id += 1
    encoded: dict[str, object] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python {Path(__file__).as_posix()}",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
