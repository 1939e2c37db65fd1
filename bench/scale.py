"""Scale benchmark: what Smake sees while many orders wait in production, and what a waiting
pair costs in memory.

    python -m bench.scale                     (or: make bench-scale; about 25 minutes)
    python -m bench.scale --sizes 10000 --modes batched --window 60     # a quick look

For each waiting-pair count N (`--sizes`) and each way of following them (`--modes`):

- single: every poll one `GET /orders/{id}` (ORDERFLOW_SMAKE__POLL_BATCH_SIZE=1), polling
  every `--interval` seconds (300, the default ceiling): today's cost, one GET per pair per poll.
- batched: due polls read 100 at a time (`GET /orders?filter[id]=...`), same interval.
- webhooks: batched, Smake's webhooks on, polling stretched to `--stretched` seconds (3600).

A run seeds the Smake simulator (in this process) with N orders in `preparing` and the
tracking topic with N waiting pairs that follow them (as the service keeps accepted pairs,
due times spread over one poll interval: the steady state), then starts `orderflow run` as a
process of its own, waits for it to be ready and measures for `--window` seconds. Meanwhile
1% of the orders a minute move on to `prepared` (Smake sends `order.prepared` for that), so
each change can be timed from the moment Smake made it to its `in_progress` status on
`orders.status`.

Reported per run: Smake requests a minute (the simulator's ledger), beside the "one GET per
pair per poll" figure N x 60 / interval; requests per state change; changes announced and
their delay (p50, p95, max); the service's RSS and RSS per waiting pair. Written to
`bench/results/scale-latest.json` with two plots: `scale-requests.png` (requests a minute
against waiting orders) and `scale-delay.png` (delay from change to status). Nothing asserts
a timing; the machine is shared: read ratios and medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from orderflow.adapters.smake import smake_create_body
from orderflow.config.settings import SmakeSettings
from orderflow.consumer.jobs import Job, Phase, tracking_key
from orderflow.consumer.tracking_record import encode_job
from orderflow.contracts.events import Order, Vendor, VendorStatus
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, free_port, prefixed_topics
from orderflow.sandbox.processes import memory_mib, sandbox_env, start_service
from orderflow.sandbox.samples import sample_order_event
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.smake_webhooks import ORDER_EVENTS

RESULTS = Path(__file__).resolve().parent / "results"
PARTITIONS = 4
TOKEN = "bench-webhook-token"
MODES = ("single", "batched", "webhooks")
# What a waiting pair's record looks like to the restore: the deadline far away.
DAY = 86_400.0


@dataclass
class Run:
    mode: str
    waiting: int
    interval_s: float
    window_s: float
    requests: int = 0
    changes: int = 0
    announced: int = 0
    delays_s: list[float] = field(default_factory=list)
    rss_mib: float | None = None
    ready_s: float | None = None

    @property
    def per_minute(self) -> float:
        return self.requests * 60.0 / self.window_s

    baseline_interval_s: float = 300.0

    @property
    def one_get_per_poll_per_minute(self) -> float:
        """The cost of one GET per pair per poll at the polling interval of the single and
        batched modes (`--interval`): today's way, at the same interval."""
        return self.waiting * 60.0 / self.baseline_interval_s

    def summary(self) -> dict[str, Any]:
        delays = sorted(self.delays_s)
        return {
            "mode": self.mode, "waiting": self.waiting, "poll_interval_s": self.interval_s,
            "window_s": self.window_s, "smake_requests": self.requests,
            "smake_requests_per_minute": round(self.per_minute, 1),
            "one_get_per_pair_per_poll_per_minute": round(self.one_get_per_poll_per_minute, 1),
            "reduction_vs_one_get_per_poll": (round(self.one_get_per_poll_per_minute / self.per_minute, 1)
                                              if self.per_minute else None),
            "state_changes": self.changes, "changes_announced": self.announced,
            "requests_per_state_change": round(self.requests / self.changes, 2) if self.changes else None,
            "delay_p50_s": round(statistics.median(delays), 2) if delays else None,
            "delay_p95_s": round(delays[int(0.95 * (len(delays) - 1))], 2) if delays else None,
            "delay_max_s": round(delays[-1], 2) if delays else None,
            "service_rss_mib": self.rss_mib,
            "rss_kib_per_waiting_pair": (round(self.rss_mib * 1024 / self.waiting, 2)
                                         if self.rss_mib else None),
            "ready_s": self.ready_s,
        }


def smake_body() -> dict[str, Any]:
    rng = random.Random(3)
    event = sample_order_event(0, rng, prefix="SCALE", shape="smake")
    order = Order.model_validate(event["order"])
    settings = SmakeSettings(api_key="k", shipping_method_map=world.SMAKE_SHIPPING_HANDLES,
                             payment_method_map=world.SMAKE_PAYMENT_HANDLES)
    return smake_create_body(order, settings)


def seed(simulator: SmakeSimulator, waiting: int, interval_s: float, start_in_s: float,
         rng: random.Random) -> tuple[list[Job], dict[str, float]]:
    """N Smake orders in `preparing`, each moving to `prepared` at 1% a minute from the
    start of the measurement, `start_in_s` from now (time for the service to restore), and
    the waiting pairs following them, due over one poll interval from that start: the
    steady state from its first second. Returns the jobs and, per order id, the wall time
    of its change."""
    body = smake_body()
    now_clock, now_wall = simulator.clock() + start_in_s, time.time() + start_in_s
    jobs: list[Job] = []
    changes: dict[str, float] = {}
    for i in range(waiting):
        order_id = f"SCALE-{i:07d}"
        order = simulator._create({**body, "external_identifier": order_id})
        # 1% a minute: the change falls uniformly over the 100 minutes from the start.
        change_in = rng.uniform(0, 6_000)
        order.timeline = [(now_clock - 120, "draft"), (now_clock - 110, "checking"),
                          (now_clock - 100, "preparing"), (now_clock + change_in, "prepared"),
                          (now_clock + 10 * DAY, "completed")]
        changes[order_id] = now_wall + change_in
        jobs.append(Job(
            order_id=order_id, vendor=Vendor.SMAKE, partition=i % PARTITIONS,
            source_event_id=f"scale-{i}", order_view=True, phase=Phase.POLL,
            status=VendorStatus.IN_PROGRESS, vendor_order_ref=str(order.id),
            vendor_state="preparing", created_at=now_wall - 3_600, intent_at=now_wall - 3_600,
            polls_without_change=50, due_at=now_wall + rng.uniform(0, interval_s)))
    simulator.webhooks.clear()
    for order in simulator.orders.values():
        at = next(t for t, state in order.timeline if state == "prepared")
        simulator.webhooks.schedule(at, order.id, ORDER_EVENTS["prepared"])
    return jobs, changes


async def fill(bootstrap: str, topic: str, jobs: list[Job]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending = []
        for job in jobs:
            pending.append(await producer.send(topic, encode_job(job), key=tracking_key(job.key),
                                               partition=job.partition))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def wait_ready(port: int, timeout_s: float) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < timeout_s:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz",
                                    timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the service did not become ready")


async def read_changes(bootstrap: str, topic: str, changes: dict[str, float], seen: dict[str, float],
                       stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    if event.get("vendor_state") == "prepared" and event["order_id"] in changes:
                        seen.setdefault(event["order_id"], now)
    finally:
        await consumer.stop()


async def one_run(args: argparse.Namespace, broker: SandboxBroker, mode: str, waiting: int,
                  index: int) -> Run:
    interval = args.stretched if mode == "webhooks" else args.interval
    run = Run(mode, waiting, interval, args.window, baseline_interval_s=args.interval)
    rng = random.Random(args.seed + index)
    topics = prefixed_topics(f"scale{index}")
    await create_topics(broker.bootstrap_servers, [
        (topics.orders_created, PARTITIONS, None), (topics.status, PARTITIONS, None),
        (topics.print_files_ready, PARTITIONS, None), (topics.dead_letter, 1, None),
        (topics.tracking, PARTITIONS, {"cleanup.policy": "compact"})])
    simulator = SmakeSimulator(seed=args.seed, **world.smake_options())
    async with SimulatorServer(simulator) as smake:
        start_in = 20.0 + waiting / 5_000  # fill and restore before the measurement starts
        start_at = time.time() + start_in
        jobs, changes = seed(simulator, waiting, interval, start_in, rng)
        await fill(broker.bootstrap_servers, topics.tracking, jobs)
        del jobs
        port = free_port()
        env = sandbox_env(broker.bootstrap_servers, topics, {"smake": smake.base_url},
                          http_port=port, group_id=f"scale-{index}",
                          abilities=broker.abilities) | {
            "ORDERFLOW_LOG__LEVEL": "WARNING",
            "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "5",
            "ORDERFLOW_POLL__MAX_INTERVAL_S": str(interval),
            "ORDERFLOW_SMAKE__POLL_BATCH_SIZE": "1" if mode == "single" else "100",
        }
        if mode == "webhooks":
            env["ORDERFLOW_SMAKE__WEBHOOK_TOKEN"] = TOKEN
            simulator.webhooks.configure(url=f"http://127.0.0.1:{port}/webhooks/smake",
                                         token=TOKEN, repeat_rate=0.05, forged_rate=0.01,
                                         max_delay_s=0.5)
        log = (RESULTS / "scale-service.log").open("ab")
        service = start_service(env, log, name=f"scale-{mode}-{waiting}")
        seen: dict[str, float] = {}
        stop = asyncio.Event()
        reader = asyncio.create_task(read_changes(broker.bootstrap_servers, topics.status, changes,
                                                  seen, stop))
        try:
            run.ready_s = round(await wait_ready(port, 600), 1)
            if time.time() > start_at:
                print(f"    (ready {time.time() - start_at:.0f} s after the seeded start: the "
                      f"first polls of the window came due before it)", flush=True)
            await asyncio.sleep(max(0.0, start_at - time.time()))
            before = simulator.ledger.request_count()
            started = time.time()
            await asyncio.sleep(args.window)
            ended = time.time()
            run.requests = simulator.ledger.request_count() - before
            await asyncio.sleep(min(30.0, interval))  # announcements of the window's last changes
            run.rss_mib = memory_mib(service.pid).get("rss_mib")
            in_window = {o: t for o, t in changes.items() if started <= t < ended}
            run.changes = len(in_window)
            run.announced = sum(1 for o in in_window if o in seen)
            run.delays_s = [seen[o] - t for o, t in in_window.items() if o in seen]
        finally:
            stop.set()
            await reader
            await asyncio.to_thread(service.stop, 30)
            log.close()
    return run


def plot(runs: list[Run], out_dir: Path, interval_s: float, stretched_s: float) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = sorted({r.waiting for r in runs})
    ax.plot(sizes, [n * 60 / interval_s for n in sizes], "k--",
            label=f"one GET per pair per poll, every {interval_s:.0f} s")
    for mode, style in zip(MODES, ("o-", "s-", "^-"), strict=True):
        points = sorted((r.waiting, r.per_minute) for r in runs if r.mode == mode)
        if points:
            label = {"single": f"one GET per poll, every {interval_s:.0f} s, measured",
                     "batched": f"batched (up to 100 ids a request), every {interval_s:.0f} s",
                     "webhooks": f"batched + webhooks, polling every {stretched_s:.0f} s"}[mode]
            ax.plot([p[0] for p in points], [max(p[1], 0.1) for p in points], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Smake pairs waiting")
    ax.set_ylabel("Smake requests per minute")
    ax.set_title("What Smake sees while orders wait (1% change a minute)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path = out_dir / "scale-requests.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode in MODES:
        delays = sorted(d for r in runs if r.mode == mode and r.waiting == max(sizes) for d in r.delays_s)
        if delays:
            ax.plot(delays, [(i + 1) / len(delays) for i in range(len(delays))],
                    label=f"{mode} ({max(sizes):,} waiting)")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("seconds from Smake's change to its status on orders.status")
    ax.set_ylabel("share of changes")
    ax.set_title("How soon a change is announced")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=8)
    path = out_dir / "scale-delay.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def render(runs: list[Run]) -> str:
    head = (f"{'mode':<9} {'waiting':>8} {'poll s':>6} {'req/min':>9} {'1 GET/poll':>10} {'x less':>7} "
            f"{'changes':>7} {'req/chg':>8} {'annc':>5} {'p50 s':>6} {'p95 s':>6} {'RSS MiB':>8} "
            f"{'KiB/pair':>8}")
    lines = [head, "-" * len(head)]
    for r in runs:
        s = r.summary()
        lines.append(
            f"{r.mode:<9} {r.waiting:>8,} {r.interval_s:>6.0f} {s['smake_requests_per_minute']:>9,.0f} "
            f"{s['one_get_per_pair_per_poll_per_minute']:>10,.0f} "
            f"{s['reduction_vs_one_get_per_poll'] or 0:>7.1f} "
            f"{r.changes:>7} {s['requests_per_state_change'] or 0:>8.2f} {r.announced:>5} "
            f"{s['delay_p50_s'] or 0:>6.1f} {s['delay_p95_s'] or 0:>6.1f} {r.rss_mib or 0:>8.0f} "
            f"{s['rss_kib_per_waiting_pair'] or 0:>8.2f}")
    by_size = {(r.mode, r.waiting): r for r in runs}
    for mode in MODES:
        sized = sorted((n, r) for (m, n), r in by_size.items() if m == mode and r.rss_mib)
        if len(sized) >= 2:
            (n0, r0), (n1, r1) = sized[0], sized[-1]
            assert r0.rss_mib is not None and r1.rss_mib is not None
            lines.append(f"{mode}: RSS per waiting pair, {n0:,} to {n1:,} waiting: "
                         f"{(r1.rss_mib - r0.rss_mib) * 1024 / (n1 - n0):.2f} KiB")
    return "\n".join(lines)


async def run_all(args: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    with chosen_broker(log_path=RESULTS / "scale-broker.log") as broker:
        index = 0
        for waiting in args.sizes:
            for mode in args.modes:
                if mode == "single" and waiting > args.single_max:
                    continue
                index += 1
                print(f"  {mode} with {waiting:,} waiting: seeding, then {args.window:.0f} s measured",
                      flush=True)
                run = await one_run(args, broker, mode, waiting, index)
                runs.append(run)
                print("   ", json.dumps(run.summary()), flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--window", type=float, default=180.0, help="seconds measured per run")
    parser.add_argument("--interval", type=float, default=300.0,
                        help="poll interval of single and batched (ORDERFLOW_POLL__MAX_INTERVAL_S)")
    parser.add_argument("--stretched", type=float, default=3_600.0,
                        help="poll interval with webhooks on")
    parser.add_argument("--single-max", type=int, default=100_000,
                        help="largest size run one GET at a time")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale-service.log").write_bytes(b"")
    load = os.getloadavg()
    print(f"scale bench: sizes {args.sizes}, modes {args.modes}, {args.window:.0f} s each; "
          f"{os.cpu_count()} CPUs, load {load[0]:.2f} before", flush=True)
    runs = asyncio.run(run_all(args))
    table = render(runs)
    print()
    print(table)
    plots = plot(runs, RESULTS, args.interval, args.stretched)
    out = RESULTS / "scale-latest.json"
    out.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load, "loadavg_after": os.getloadavg()},
        "settings": vars(args), "runs": [r.summary() for r in runs], "rendered": table,
    }, indent=2) + "\n")
    print(f"\nwritten: {out}, {', '.join(str(p) for p in plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
