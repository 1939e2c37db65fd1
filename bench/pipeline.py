"""End-to-end benchmark of orderflow beside the ceilings it cannot beat, measured in one run.

    python -m bench.pipeline [--orders 2000] [--repeat 3] [...]     (or: make bench)

One run starts the embedded broker, the vendor simulators (every request answered after
`--latency` seconds) and the service (`orderflow run`), each a process of its own, then
repeats `--repeat` rounds of:

1. burst: produce `--orders` sample orders to the input topic at once and read the status
   topic until every (order, vendor) pair is terminal. Throughput counts orders whose pairs
   are all terminal over the wall time from the first produce to the last terminal status.
   Latency runs from the moment an order is handed to the producer to the moment a pair's
   `completed` status is read back (per pair, by vendor, and per order = its last pair); in a
   burst it is mostly queueing. Intake (orders accepted into tracking) is read from the
   service's committed input offsets.
2. raw consume ceiling: a plain AIOKafkaConsumer (partitions assigned, no group) reads the
   round's input records again, timed from the first fetch to the last record.
3. raw HTTP ceiling: plain aiohttp clients keep `--concurrency` requests in flight per vendor
   (the service's per-vendor limit), against all simulators at once, for `--ceiling-seconds`.
4. floors: one Kafka hop (produce -> consume with the intake's consumer settings), and a
   paced probe (`--probe-orders` at `--probe-rate`) whose latency is not queueing.

Why a subprocess for the service: in-process, the service would share one event loop (and
one core) with the producer, the reader and the ceilings' clients, and every timestamp the
reader takes would wait behind the service's own work. As its own process it runs as it is
deployed, and its CPU time and memory (/proc) are its own.

Medians across rounds and the ratios pipeline/ceiling are printed as a table and written to
`bench/results/latest.json`. The machine is shared and noisy: read ratios and medians, never
single absolute figures. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shlex
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from orderflow.adapters.reevoo import reevoo_order_body
from orderflow.config.settings import Settings, TopicSettings
from orderflow.consumer.decode import Undecodable, decode_order_created
from orderflow.contracts.events import OrderCreated
from orderflow.sandbox.broker import EmbeddedBroker, create_topics, free_port
from orderflow.sandbox.outcomes import OutputReader, expected_pairs
from orderflow.sandbox.processes import (
    Child,
    cpu_seconds,
    memory_mib,
    sandbox_env,
    start_service,
    start_simulators,
    wait_ready,
)
from orderflow.sandbox.samples import encode, sample_orders
from orderflow.sandbox.simulators import defaults
from orderflow.sandbox.simulators.defaults import VENDORS

# Credentials the simulators accept by default.
ZAKEKE_CLIENT = (defaults.ZAKEKE_CLIENT_ID, defaults.ZAKEKE_CLIENT_SECRET)
SMAKE_KEY = defaults.SMAKE_API_KEY
REEVOO_CLIENT = (defaults.REEVOO_API_KEY, defaults.REEVOO_API_SECRET)
REEVOO_TRKREF = defaults.REEVOO_TRKREF

RESULTS = Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------------- processes


async def sample_cpu(pid: int | None, into: list[tuple[float, float]], every_s: float = 0.5) -> None:
    """(monotonic time, CPU seconds) of a process every `every_s`, until cancelled."""
    while True:
        used = cpu_seconds(pid)
        if used is not None:
            into.append((time.monotonic(), used))
        await asyncio.sleep(every_s)


def peak_pct(samples: Sequence[tuple[float, float]], window_s: float = 1.0) -> float | None:
    """The busiest `window_s` of a CPU series, in % of one core (100: one core saturated)."""
    best = None
    j = 0
    for i in range(len(samples)):
        while j < len(samples) and samples[j][0] - samples[i][0] < window_s:
            j += 1
        if j >= len(samples):
            break
        pct = 100 * (samples[j][1] - samples[i][1]) / (samples[j][0] - samples[i][0])
        best = pct if best is None else max(best, pct)
    return best


def simulators_command(args: argparse.Namespace) -> list[str]:
    return ["--latency-s", str(args.latency), "--seed", str(args.seed),
            "--print-files-delay-s", str(args.print_files_delay),
            "--smake-seconds-per-state", str(args.smake_state_s)]


def service_env(args: argparse.Namespace, bootstrap: str, topics: TopicSettings,
                urls: Mapping[str, str], http_port: int) -> dict[str, str]:
    """The sandbox's ORDERFLOW_* environment plus the benchmark's polling and concurrency."""
    env = sandbox_env(bootstrap, topics, {v: urls[v] for v in VENDORS}, http_port=http_port)
    env.update({
        "ORDERFLOW_POLL__INITIAL_INTERVAL_S": str(args.poll_initial),
        "ORDERFLOW_POLL__MAX_INTERVAL_S": str(args.poll_max),
        "ORDERFLOW_SHUTDOWN_GRACE_S": "5",
        "ORDERFLOW_LOG__LEVEL": args.log_level,
        **{f"ORDERFLOW_{v.upper()}__MAX_CONCURRENCY": str(args.concurrency) for v in VENDORS},
    })
    return env


# ----------------------------------------------------------------------------- observations


async def service_vendor_metrics(session: aiohttp.ClientSession, port: int) -> dict[str, Counter[str]]:
    """Per vendor, from the service's /metrics: requests, their summed duration, and
    requests that failed (anything but ok / not_found)."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        text = await answer.text()
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            vendor = sample.labels.get("vendor")
            if vendor is None:
                continue
            if sample.name == "orderflow_vendor_request_duration_seconds_sum":
                found[vendor]["seconds"] += sample.value  # type: ignore[assignment]
            elif sample.name == "orderflow_vendor_request_duration_seconds_count":
                found[vendor]["requests"] += int(sample.value)
            elif (sample.name == "orderflow_vendor_requests_total"
                  and sample.labels.get("outcome") not in ("ok", "not_found")):
                found[vendor]["failed"] += int(sample.value)
    return found


async def ledger_requests(session: aiohttp.ClientSession,
                          urls: Mapping[str, str]) -> dict[str, Counter[str]]:
    """Requests each simulator answered so far (its ledger), by route ("GET get_order")."""
    found: dict[str, Counter[str]] = {}
    for vendor, url in urls.items():
        async with session.get(f"{url}/_sim/ledger") as answer:
            routes = (await answer.json())["requests"]
        found[vendor] = Counter({route: sum(statuses.values()) for route, statuses in routes.items()})
    return found


async def end_offsets(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> dict[int, int]:
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}


async def watch_intake(watcher: AIOKafkaConsumer, topic: str, start: Mapping[int, int],
                       target: int, every_s: float = 0.05) -> float:
    """When the service has committed `target` input records past `start`: it commits an
    input offset only once the orders' jobs are acknowledged by the tracking topic. The
    watcher holds the service's group id but only reads its offsets: assigned, it never joins
    the group, so it takes no partition from the service."""
    tps = [TopicPartition(topic, p) for p in sorted(start)]
    while True:
        done = 0
        for tp in tps:
            committed = await watcher.committed(tp)
            if committed is not None:
                done += max(0, committed - start[tp.partition])
        if done >= target:
            return time.time()
        await asyncio.sleep(every_s)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (q in [0, 100])."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# The status reader fetches with a short broker wait. With aiokafka's default
# (fetch_max_wait_ms=500) the embedded broker hands a record over ~135 ms (p50) after it is
# produced, which would be added to every latency measured here; at 50 ms it is ~25 ms.
READER_FETCH_MAX_WAIT_MS = 50


# ----------------------------------------------------------------------------- the rounds


@dataclass
class Bench:
    args: argparse.Namespace
    bootstrap: str
    topics: TopicSettings
    group: str
    urls: dict[str, str]
    service: Child
    others: dict[str, int | None]  # name -> pid, for CPU shares
    http_port: int
    session: aiohttp.ClientSession
    producer: AIOKafkaProducer
    offsets: AIOKafkaConsumer
    watcher: AIOKafkaConsumer
    reader: OutputReader
    hop_topic: str
    routing: Settings = field(default_factory=Settings)

    def pids(self) -> dict[str, int | None]:
        return {"service": self.service.pid, **self.others}

    def cpu(self) -> dict[str, float | None]:
        return {name: cpu_seconds(pid) for name, pid in self.pids().items()}


async def produce(bench: Bench, events: Sequence[dict[str, Any]], rate: float,
                  sent_at: dict[str, float]) -> None:
    """Hand the orders to the producer, all at once (rate 0) or `rate` a second; `sent_at`
    gets the moment each was handed over, the start of its latency."""
    began = time.monotonic()
    futures = []
    for n, event in enumerate(events):
        if rate > 0:
            await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
        key, value = encode(event)
        sent_at[event["order"]["order_id"]] = time.time()
        futures.append(await bench.producer.send(bench.topics.orders_created, value, key=key))
    await asyncio.gather(*futures)


async def drive(bench: Bench, events: list[dict[str, Any]], rate: float,
                label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Produce the orders and read the status topic until each of their pairs is terminal;
    returns the figures of that stretch and what explains them."""
    args = bench.args
    topic = bench.topics.orders_created
    pairs = expected_pairs(events, bench.routing)
    start = await end_offsets(bench.offsets, topic, args.partitions)
    ledger_before = await ledger_requests(bench.session, bench.urls)
    metrics_before = await service_vendor_metrics(bench.session, bench.http_port)
    cpu_before = bench.cpu()
    service_cpu: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_cpu(bench.service.pid, service_cpu))
    intake = asyncio.create_task(watch_intake(bench.watcher, topic, start, len(events)))
    sent_at: dict[str, float] = {}
    first_send = time.time()
    producing = asyncio.create_task(produce(bench, events, rate, sent_at))

    outcomes = bench.reader.outcomes
    deadline = time.monotonic() + args.timeout
    last_check = last_print = time.monotonic()
    while time.monotonic() < deadline:
        await bench.reader.poll(timeout_ms=100)
        now = time.monotonic()
        if now - last_check >= 0.1:
            last_check = now
            done = len(pairs & outcomes.terminal_ids.keys())
            if done == len(pairs) and producing.done():
                break
            if now - last_print >= 5:
                last_print = now
                print(f"  {label}: {done}/{len(pairs)} pairs terminal, "
                      f"{time.time() - first_send:.0f}s", file=sys.stderr, flush=True)
    cpu_after = bench.cpu()
    span = time.time() - first_send
    sampler.cancel()
    await producing
    ledger_after = await ledger_requests(bench.session, bench.urls)
    metrics_after = await service_vendor_metrics(bench.session, bench.http_port)
    intake_done: float | None = None
    try:
        intake_done = await asyncio.wait_for(intake, timeout=5)
    except TimeoutError:
        intake_done = None

    finished = {p for p in pairs if p in outcomes.terminal_at}
    last_terminal = max((outcomes.terminal_at[p] for p in finished), default=time.time())
    wall = last_terminal - first_send
    by_order: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in pairs:
        by_order[pair[0]].append(pair)
    orders_done = [o for o, ps in by_order.items() if all(p in finished for p in ps)]
    completed = {p for p in finished if outcomes.terminal_status.get(p) == "completed"}
    pair_latency: dict[str, list[float]] = defaultdict(list)
    vendor_last: dict[str, float] = {}
    for order_id, vendor in completed:
        at = outcomes.terminal_at[(order_id, vendor)]
        pair_latency[vendor].append(at - sent_at[order_id])
        pair_latency["all"].append(at - sent_at[order_id])
        vendor_last[vendor] = max(vendor_last.get(vendor, 0.0), at)
    order_latency = [max(outcomes.terminal_at[p] for p in ps) - sent_at[o]
                     for o, ps in by_order.items() if all(p in completed for p in ps)]

    routes = {v: ledger_after[v] - ledger_before[v] for v in VENDORS}
    requests = {v: sum(routes[v].values()) for v in VENDORS}
    total_requests = sum(requests.values())
    figures: dict[str, Any] = {
        "orders": len(events),
        "pairs": len(pairs),
        "orders_terminal": len(orders_done),
        "pairs_terminal": len(finished),
        "produce_s": max(sent_at.values()) - first_send,
        "wall_s": wall,
        "orders_per_s": len(orders_done) / wall if wall > 0 else None,
        "pairs_per_s": len(finished) / wall if wall > 0 else None,
        "intake_s": None if intake_done is None else intake_done - first_send,
        "intake_orders_per_s": (None if intake_done is None
                                else len(events) / max(1e-9, intake_done - first_send)),
        "vendor_requests": total_requests,
        "vendor_requests_per_order": total_requests / len(events),
        "vendor_requests_per_s": total_requests / wall if wall > 0 else None,
    }
    for vendor in ("all", *VENDORS):
        values = pair_latency.get(vendor, [])
        figures[f"latency_{vendor}_p50_s"] = percentile(values, 50)
        figures[f"latency_{vendor}_p95_s"] = percentile(values, 95)
    figures["latency_order_p50_s"] = percentile(order_latency, 50)
    figures["latency_order_p95_s"] = percentile(order_latency, 95)
    for vendor in VENDORS:
        vendor_pairs = sum(1 for _, v in pairs if v == vendor)
        figures[f"vendor_requests_{vendor}"] = requests[vendor]
        figures[f"vendor_requests_per_pair_{vendor}"] = (
            requests[vendor] / vendor_pairs if vendor_pairs else None)
        # Each vendor's request rate while it had work: until its last pair completed.
        busy = vendor_last.get(vendor, last_terminal) - first_send
        figures[f"vendor_requests_per_s_{vendor}"] = requests[vendor] / busy if busy > 0 else None
        seen = metrics_after.get(vendor, Counter())
        before = metrics_before.get(vendor, Counter())
        calls = seen["requests"] - before["requests"]
        figures[f"client_request_mean_ms_{vendor}"] = (
            1000 * (seen["seconds"] - before["seconds"]) / calls if calls else None)
        figures[f"client_requests_failed_{vendor}"] = seen["failed"] - before["failed"]
    for name, after in cpu_after.items():
        before_cpu = cpu_before.get(name)
        figures[f"cpu_pct_{name}"] = (None if after is None or before_cpu is None
                                      else 100 * (after - before_cpu) / span)
    figures["cpu_peak_pct_service"] = peak_pct(service_cpu)
    service_before, service_after = cpu_before.get("service"), cpu_after.get("service")
    figures["service_cpu_ms_per_order"] = (
        None if service_before is None or service_after is None
        else 1000 * (service_after - service_before) / len(events))
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    for order_id, vendor in finished:
        statuses[vendor][outcomes.terminal_status[(order_id, vendor)]] += 1
    details = {
        "terminal_statuses": {v: dict(c) for v, c in sorted(statuses.items())},
        "unfinished_pairs": sorted(f"{o}/{v}" for o, v in pairs - finished)[:20],
        "requests_by_route": {v: dict(sorted(routes[v].items())) for v in VENDORS},
        "window": [first_send, last_terminal],
        "input_offsets_start": start,
        "zakeke_order": min((o for o, v in pairs if v == "zakeke"), default=events[0]["order"]["order_id"]),
        "sample_event": events[0],
    }
    return figures, details


async def latency_probe(bench: Bench, index: int) -> dict[str, Any]:
    """A few orders at a steady, light rate: the latency of an order that does not queue
    behind a burst (poll intervals, print files and vendor latency, not backlog)."""
    args = bench.args
    events = sample_orders(args.probe_orders, seed=args.seed + 1000 + index, prefix=f"P{index}")
    figures, _ = await drive(bench, events, args.probe_rate, f"probe {index}")
    wanted = [k for k in figures if k.startswith("latency_")] + ["orders_terminal", "orders"]
    return {f"probe_{k}": figures[k] for k in wanted}


async def consume_ceiling(bench: Bench, start: Mapping[int, int], end: Mapping[int, int]) -> dict[str, Any]:
    """A plain consumer reads this round's input records again (assigned, no group, the same
    batch size as the intake); then, apart, what validating them as `order.created` costs."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(bench.topics.orders_created, p) for p in sorted(start)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
        target = sum(end[p] - start[p] for p in start)
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        began = time.perf_counter()
        while len(values) < target and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batch.values():
                values.extend(record.value for record in records)
        elapsed = time.perf_counter() - began
    finally:
        await consumer.stop()
    began = time.perf_counter()
    invalid = sum(isinstance(decode_order_created(v, 1 << 20), Undecodable) for v in values)
    validate_s = time.perf_counter() - began
    return {
        "consume_records": len(values),
        "consume_records_per_s": len(values) / elapsed if elapsed > 0 else None,
        "validate_records_per_s": len(values) / validate_s if validate_s > 0 else None,
        "validate_invalid": invalid,
    }


async def kafka_hop(bench: Bench, records: int = 40, rate: float = 40.0) -> dict[str, Any]:
    """One Kafka hop, produced -> consumed, at a light steady rate, with the consumer settings
    the intake uses (aiokafka's defaults but the batch size), on a topic of its own: the
    latency floor that the input and the status topic each add to an order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.bootstrap, enable_auto_commit=False)
    await consumer.start()
    latencies: list[float] = []
    try:
        tps = [TopicPartition(bench.hop_topic, p) for p in range(bench.args.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await consumer.getmany(timeout_ms=100)  # the positions are known before producing

        async def read() -> None:
            while len(latencies) < records:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                now = time.time()
                latencies.extend(now - float(r.value) for rs in batch.values() for r in rs)

        reading = asyncio.create_task(read())
        for n in range(records):
            await bench.producer.send(bench.hop_topic, str(time.time()).encode(), key=str(n).encode())
            await asyncio.sleep(1 / rate)
        await asyncio.wait_for(reading, timeout=30)
    finally:
        await consumer.stop()
    return {"kafka_hop_p50_s": percentile(latencies, 50), "kafka_hop_p95_s": percentile(latencies, 95)}


async def http_ceiling(bench: Bench, zakeke_code: str, sample: dict[str, Any]) -> dict[str, Any]:
    """Plain aiohttp clients, `--concurrency` requests in flight per vendor (the service's
    per-vendor limit), all vendors at once, each repeating the call the service makes most:
    Zakeke's order read (a poll), Smake's order read (a poll), Reevoo's submission."""
    args = bench.args
    urls = bench.urls
    specs: dict[str, tuple[str, str, dict[str, str], bytes | None]] = {}
    async with aiohttp.ClientSession() as session:
        if "zakeke" in VENDORS:
            basic = base64.b64encode(":".join(ZAKEKE_CLIENT).encode()).decode()
            async with session.post(f"{urls['zakeke']}/token", headers={"Authorization": f"Basic {basic}"},
                                    data={"grant_type": "client_credentials", "access_type": "S2S"}) as r:
                token = (await r.json())["access_token"]
            specs["zakeke"] = ("GET", f"{urls['zakeke']}/v2/order/{zakeke_code}",
                               {"Authorization": f"Bearer {token}"}, None)
    if "smake" in VENDORS:
        specs["smake"] = ("GET", f"{urls['smake']}/orders/1", {"Authorization": f"Bearer {SMAKE_KEY}"}, None)
    if "reevoo" in VENDORS:
        order = OrderCreated.model_validate(sample).order
        body = reevoo_order_body(order, REEVOO_TRKREF) | {"order_ref": "BENCH-CEILING"}
        basic = base64.b64encode(":".join(REEVOO_CLIENT).encode()).decode()
        specs["reevoo"] = ("POST", f"{urls['reevoo']}/v4/organisations/{REEVOO_TRKREF}/customer_order",
                           {"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
                           json.dumps(body).encode())

    statuses: dict[str, Counter[int]] = {v: Counter() for v in specs}
    stop_at = time.perf_counter() + args.ceiling_seconds

    async def worker(session: aiohttp.ClientSession, vendor: str) -> None:
        method, url, headers, body = specs[vendor]
        while time.perf_counter() < stop_at:
            try:
                async with session.request(method, url, headers=headers, data=body) as answer:
                    await answer.read()
                    statuses[vendor][answer.status] += 1
            except aiohttp.ClientError:
                statuses[vendor][0] += 1

    sessions = {v: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency))
                for v in specs}
    try:
        began = time.perf_counter()
        await asyncio.gather(*(worker(sessions[v], v) for v in specs for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - began
    finally:
        for session in sessions.values():
            await session.close()
    figures: dict[str, Any] = {
        "http_requests_per_s": sum(sum(c.values()) for c in statuses.values()) / elapsed,
        "http_ideal_requests_per_s": len(specs) * args.concurrency / args.latency if args.latency else None,
    }
    for vendor, counts in statuses.items():
        figures[f"http_requests_per_s_{vendor}"] = sum(counts.values()) / elapsed
        figures[f"http_statuses_{vendor}"] = {str(k): v for k, v in sorted(counts.items())}
    return figures


# ----------------------------------------------------------------------------- report

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


# ----------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, broker: EmbeddedBroker, sim_log: IO[bytes],
              service_log: IO[bytes]) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%H%M%S")
    topics = TopicSettings(
        orders_created=f"bench{stamp}.orders.created", status=f"bench{stamp}.orders.status",
        print_files_ready=f"bench{stamp}.orders.print-files-ready",
        dead_letter=f"bench{stamp}.orders.created.dlq", tracking=f"bench{stamp}.orderflow.tracking",
    )
    rounds: list[dict[str, Any]] = []
    round_details: list[dict[str, Any]] = []
    memory: dict[str, float] = {}
    children: list[Child] = []
    bootstrap = broker.bootstrap_servers
    hop_topic = f"bench{stamp}.hop"
    await create_topics(bootstrap, [(topics.orders_created, args.partitions, None),
                                    (hop_topic, args.partitions, None),
                                    (topics.status, args.partitions, None),
                                    (topics.print_files_ready, args.partitions, None),
                                    (topics.dead_letter, args.partitions, None)])
    try:
        simulators, urls = start_simulators(simulators_command(args), sim_log, VENDORS)
        children.append(simulators)
        http_port = free_port()
        env = service_env(args, bootstrap, topics, urls, http_port)
        service = start_service(env, service_log,
                                wrapper=shlex.split(args.service_prefix) if args.service_prefix else ())
        children.append(service)
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            await wait_ready(session, http_port, service)
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
            await producer.start()
            stack.push_async_callback(producer.stop)
            offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await offsets.start()
            stack.push_async_callback(offsets.stop)
            group = env["ORDERFLOW_KAFKA__GROUP_ID"]
            watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                       enable_auto_commit=False)
            await watcher.start()
            watcher.assign([TopicPartition(topics.orders_created, p) for p in range(args.partitions)])
            stack.push_async_callback(watcher.stop)
            reader = OutputReader(bootstrap, topics.status, topics.print_files_ready,
                                  fetch_max_wait_ms=READER_FETCH_MAX_WAIT_MS)
            await reader.start()
            stack.push_async_callback(reader.stop)
            bench = Bench(args, bootstrap, topics, group, urls, service,
                          {"simulators": simulators.pid, "broker": broker.pid, "bench": os.getpid()},
                          http_port, session, producer, offsets, watcher, reader, hop_topic)
            print(f"bench: {args.orders} orders x {args.repeat} rounds, vendors {', '.join(VENDORS)}, "
                  f"{args.latency * 1000:.0f} ms latency, service pid {service.pid}",
                  file=sys.stderr, flush=True)
            for index in range(1, args.repeat + 1):
                events = sample_orders(args.orders, seed=args.seed + index, prefix=f"R{index}")
                figures, details = await drive(bench, events, 0.0, f"round {index}")
                end = await end_offsets(offsets, topics.orders_created, args.partitions)
                figures.update(await consume_ceiling(bench, details["input_offsets_start"], end))
                ceiling = await http_ceiling(bench, details["zakeke_order"], details.pop("sample_event"))
                details["http_statuses"] = {k: ceiling.pop(k) for k in list(ceiling)
                                            if k.startswith("http_statuses_")}
                figures.update(ceiling)
                figures.update(await kafka_hop(bench))
                if args.probe_orders > 0:
                    figures.update(await latency_probe(bench, index))
                add_ratios(figures)
                rounds.append(figures)
                round_details.append(details)
                print(f"  round {index}: {figures['orders_per_s']:.1f} orders/s, "
                      f"{figures['orders_terminal']}/{figures['orders']} orders terminal, "
                      f"p50 {figures['latency_all_p50_s']:.2f}s", file=sys.stderr, flush=True)
            memory = memory_mib(service.pid)
    finally:
        for child in reversed(children):
            child.stop()
    median = medians(rounds)
    return {
        "command": " ".join(["python -m bench.pipeline", *sys.argv[1:]]),
        "started_at": started_at,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items()},
        "vendors": list(VENDORS),
        "median": median,
        "rounds": rounds,
        "round_details": round_details,
        "service_memory_after_run": memory,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000, help="orders per round (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--partitions", type=int, default=4, help="input topic partitions (default 4)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds every simulator waits before answering (default 0.05)")
    parser.add_argument("--print-files-delay", type=float, default=0.5,
                        help="seconds until Zakeke's print files are ready (default 0.5)")
    parser.add_argument("--smake-state-s", type=float, default=0.1,
                        help="seconds a Smake order spends in each state (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=Settings().zakeke.max_concurrency,
                        help="the service's per-vendor concurrency, and the HTTP ceiling's (default: "
                             "the service's default)")
    parser.add_argument("--poll-initial", type=float, default=0.2,
                        help="ORDERFLOW_POLL__INITIAL_INTERVAL_S (default 0.2)")
    parser.add_argument("--poll-max", type=float, default=1.0,
                        help="ORDERFLOW_POLL__MAX_INTERVAL_S (default 1)")
    parser.add_argument("--ceiling-seconds", type=float, default=3.0,
                        help="duration of the HTTP ceiling per round (default 3)")
    parser.add_argument("--probe-orders", type=int, default=100,
                        help="orders of the paced latency probe after each round (0: none; default 100)")
    parser.add_argument("--probe-rate", type=float, default=20.0,
                        help="orders/s of the paced latency probe (default 20)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds a round may take before it is reported unfinished (default 180)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="INFO", help="the service's log level (default INFO)")
    parser.add_argument("--service-prefix", default="",
                        help="a command to wrap the service in, e.g. 'py-spy record -o svc.svg --'")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (EmbeddedBroker(log_path=RESULTS / "broker.log") as broker,
          open(RESULTS / "simulators.log", "wb") as sim_log,
          open(RESULTS / "service.log", "wb") as service_log):
        report = asyncio.run(run(args, broker, sim_log, service_log))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(f"orderflow bench: {args.orders} orders x {len(report['rounds'])} rounds; vendors "
          f"{', '.join(VENDORS)}; {args.latency * 1000:.0f} ms vendor latency; concurrency "
          f"{args.concurrency}/vendor; {args.partitions} partitions; {os.cpu_count()} CPUs, "
          f"load {report['machine']['loadavg_before'][0]:.2f} before")
    print(render_table(report["rounds"], report["median"]))
    memory = report["service_memory_after_run"]
    if memory:
        print(f"service memory after the run: RSS {memory.get('rss_mib', 0):.0f} MiB, "
              f"peak {memory.get('peak_rss_mib', 0):.0f} MiB")
    unfinished = [d["unfinished_pairs"] for d in report["round_details"] if d["unfinished_pairs"]]
    if unfinished:
        print(f"UNFINISHED pairs (first few per round): {unfinished}")
    print(f"report: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
