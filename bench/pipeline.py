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
import contextlib
import json
import os
import shlex
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.ceilings import consume_ceiling, http_ceiling, kafka_hop
from bench.observe import (
    end_offsets,
    ledger_requests,
    peak_pct,
    percentile,
    sample_cpu,
    service_vendor_metrics,
    watch_intake,
)
from bench.report import RESULTS, add_ratios, medians, render_table
from bench.rig import READER_FETCH_MAX_WAIT_MS, Bench
from orderflow.config.settings import Settings, TopicSettings
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, free_port, prefixed_topics
from orderflow.sandbox.outcomes import OutputReader, expected_pairs
from orderflow.sandbox.processes import (
    Child,
    memory_mib,
    sandbox_env,
    start_service,
    start_simulators,
    wait_ready,
)
from orderflow.sandbox.samples import encode, sample_orders
from orderflow.sandbox.simulators.defaults import VENDORS


def simulators_command(args: argparse.Namespace) -> list[str]:
    # The vendors as their pages describe them (--kind), as the recorded figures were
    # measured: the hard world's read lag and late tracking numbers would add requests that
    # say nothing of orderflow's throughput. `--hard` measures in that world instead.
    return ["--latency-s", str(args.latency), "--seed", str(args.seed),
            "--print-files-delay-s", str(args.print_files_delay),
            "--smake-seconds-per-state", str(args.smake_state_s),
            *(() if args.hard else ("--kind",))]


def service_env(args: argparse.Namespace, broker: SandboxBroker, topics: TopicSettings,
                urls: Mapping[str, str], http_port: int) -> dict[str, str]:
    """The sandbox's ORDERFLOW_* environment plus the benchmark's polling and concurrency."""
    env = sandbox_env(broker.bootstrap_servers, topics, {v: urls[v] for v in VENDORS},
                      http_port=http_port, abilities=broker.abilities)
    env.update({
        "ORDERFLOW_POLL__INITIAL_INTERVAL_S": str(args.poll_initial),
        "ORDERFLOW_POLL__MAX_INTERVAL_S": str(args.poll_max),
        "ORDERFLOW_SHUTDOWN_GRACE_S": "5",
        "ORDERFLOW_LOG__LEVEL": args.log_level,
        **{f"ORDERFLOW_{v.upper()}__MAX_CONCURRENCY": str(args.concurrency) for v in VENDORS},
    })
    return env


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


async def run(args: argparse.Namespace, broker: SandboxBroker, sim_log: IO[bytes],
              service_log: IO[bytes]) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%H%M%S")
    topics = prefixed_topics(f"bench{stamp}")
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
        env = service_env(args, broker, topics, urls, http_port)
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
    parser.add_argument("--hard", action="store_true",
                        help="simulators as the vendors really are (read lag, late tracking "
                             "numbers; default: as their pages describe them, like the recorded "
                             "figures)")
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
    with (chosen_broker(log_path=RESULTS / "broker.log") as broker,
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
