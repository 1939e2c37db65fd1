"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a real
`orderflow run` under a small load.

On this machine: the embedded broker, the three vendor simulators (with a few injected faults,
so error outcomes exist), `orderflow run` configured only through ORDERFLOW_* variables,
Debian's Prometheus scraping it every second with the labels the ServiceMonitor gives a pod
(namespace, job, pod), and a producer sending sample orders plus some records that must be
dead-lettered. Then each template variable is resolved as Grafana does (label_values) and each
panel query is asked over the load's time range: every one must return at least one value."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    DEPLOY,
    Topics,
    create_platform_topics,
    free_port,
    http_get,
    needs_cli,
    orderflow_run,
    service_env,
    tool,
    vendor_simulators,
    wait_for,
)

pytestmark = [needs_cli, pytest.mark.slow, pytest.mark.integration]

DASHBOARD = DEPLOY / "grafana" / "orderflow.json"
# The labels a ServiceMonitor scrape gives a replica (deploy/kubernetes/base).
TARGET_LABELS = {"namespace": "orderflow-test", "pod": "orderflow-0"}
JOB = "orderflow"
ORDERS = 60
# Grafana's $__rate_interval for a 1 s scrape interval is at least 4 scrapes; a little more
# keeps rates smooth over the load's bursts.
RATE_INTERVAL = "10s"


def prometheus_query(base: str, path: str, **params: str) -> Any:
    status, body = http_get(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=10)
    assert status == 200, body[:500]
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def produce_load(bootstrap_servers: str, topic: str) -> None:
    """Sample orders of every shape in bursts over a few seconds, plus records that are not
    valid order.created v1 (each dead-letter reason the producer can cause)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from orderflow.sandbox.samples import encode, sample_orders

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=False)
        await producer.start()
        try:
            events = sample_orders(ORDERS, seed=11, prefix="DASH")
            for burst in range(6):
                for event in events[burst::6]:
                    key, value = encode(event)
                    await producer.send(topic, value=value, key=key)
                await producer.send(topic, value=b"{not json", key=f"bad-json-{burst}".encode())
                not_an_order = json.dumps({"event_type": "order.created"}).encode()
                await producer.send(topic, value=not_an_order, key=f"bad-schema-{burst}".encode())
                await producer.flush()
                await asyncio.sleep(1.5)
            # A repeat of an order already tracked.
            key, value = encode(events[0])
            await producer.send_and_wait(topic, value=value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())


def resolve_variables(base: str, board: dict[str, Any]) -> dict[str, str]:
    """Each query variable's label_values(...) answered by Prometheus, in dashboard order (so
    later variables see earlier choices); the first value is the one a user would pick."""
    chosen: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = substitute(variable["query"], chosen)
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"unexpected variable query {query!r}"
        selector, label = match.groups()
        values = prometheus_query(base, f"/api/v1/label/{label}/values", **{"match[]": selector})
        assert values, f"variable {variable['name']}: {query} returned nothing"
        chosen[variable["name"]] = values[0]
    return chosen


def substitute(expr: str, variables: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in variables.items():
        # As Grafana escapes a single value for a =~ matcher inside a PromQL string.
        expr = expr.replace(f"${name}", re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value))
    return expr


def has_value(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(v)) for series in result for _, v in series["values"])


def test_every_dashboard_query_returns_data(tmp_path: Path) -> None:
    from orderflow.sandbox.broker import EmbeddedBroker

    board = json.loads(DASHBOARD.read_text())
    topics = Topics()
    http_port, prom_port = free_port(), free_port()
    prometheus_url = f"http://127.0.0.1:{prom_port}"
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": JOB,
            "static_configs": [{"targets": [f"127.0.0.1:{http_port}"], "labels": TARGET_LABELS}],
        }],
    }))

    with EmbeddedBroker() as broker, \
            vendor_simulators(tmp_path / "simulators.log", seed="5", error_rate="0.05",
                              print_files_delay_s="1", smake_seconds_per_state="0.5") as urls:
        create_platform_topics(broker.bootstrap_servers, topics)
        env = service_env(broker.bootstrap_servers, http_port, topics, urls)
        executable = str(Path(sys.executable).parent / "orderflow")
        log = tmp_path / "orderflow.log"
        with orderflow_run(executable, env, log) as service, \
                open(tmp_path / "prometheus.log", "wb") as prom_log:
            prometheus = subprocess.Popen(
                [tool("prometheus"), f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=prom_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                wait_for(f"http://127.0.0.1:{http_port}/readyz", 200, 60, service, log)
                wait_for(f"{prometheus_url}/-/ready", 200, 30, prometheus,
                         tmp_path / "prometheus.log")
                start = time.time()
                produce_load(broker.bootstrap_servers, topics.orders_created)
                # Until the slowest panel has something to show: print files announced, and
                # Prometheus has scraped that.
                deadline = time.monotonic() + 40
                done = 'sum(orderflow_order_to_print_files_seconds_count) > 0 and ' \
                       'sum(orderflow_vendor_orders_total{status="completed"}) > 0'
                while not prometheus_query(prometheus_url, "/api/v1/query", query=done)["result"]:
                    assert service.poll() is None, log.read_text()[-4000:]
                    assert time.monotonic() < deadline, (
                        "no completed orders or print files within 40 s:\n"
                        + log.read_text()[-4000:])
                    time.sleep(1)
                time.sleep(3)  # a few more scrapes, so rates have two samples after the load
                end = time.time()

                up = prometheus_query(prometheus_url, "/api/v1/query", query=f'up{{job="{JOB}"}}')
                assert [s["value"][1] for s in up["result"]] == ["1"]
                variables = resolve_variables(prometheus_url, board)
                assert variables == {"namespace": TARGET_LABELS["namespace"], "job": JOB,
                                     "pod": TARGET_LABELS["pod"]}

                empty = []
                asked = 0
                for panel in board["panels"]:
                    for target in panel.get("targets", []):
                        expr = substitute(target["expr"], variables)
                        asked += 1
                        result = prometheus_query(
                            prometheus_url, "/api/v1/query_range", query=expr,
                            start=f"{start:.3f}", end=f"{end:.3f}", step="1")["result"]
                        if not has_value(result):
                            empty.append(f"{panel['title']}: {expr}")
                assert asked >= 15
                assert not empty, "dashboard queries with no data:\n" + "\n".join(empty)
            finally:
                prometheus.terminate()
                prometheus.wait(timeout=20)
