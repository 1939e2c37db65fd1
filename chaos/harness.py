"""The chaos harness: real processes, real faults, then a count of what was lost or repeated.

    python -m chaos [--orders 10000] [...]          (or: make chaos; --short for the CI size)

It starts the embedded broker, the three vendor simulators (one process) and up to
`--replicas` processes of `orderflow run` in one consumer group on a `--partitions` input
topic. A producer that is not orderflow's code (confluent-kafka, i.e. librdkafka) publishes
orders at `--rate` a second, with poison records and re-deliveries mixed in, while the
harness, on a timetable spread over the production time:

- SIGKILLs a random replica every few seconds and starts it again (`--kills` times);
- scales 1 -> N -> 1 -> N replicas, the scale-downs by SIGTERM (graceful hand-over);
- freezes the broker process with SIGSTOP for `--stall-s`, `--stalls` times;
- freezes a replica with SIGSTOP past its session timeout, `--freezes` times, then thaws it
  (a zombie: its partitions have moved while it was stopped);
- makes every vendor fail all along: 5xx on a share of requests, answers slower than the
  service's client timeout, creates answered by a 5xx or a dropped connection after the
  vendor acted (Zakeke and Smake: the service must look up before creating again), bursts
  of 429 with Retry-After, and one `--outage-s` full outage of one vendor.

Then it waits for every (order, vendor) pair to be announced terminal, stops the replicas
with SIGTERM, reads every output topic and every simulator ledger, prints the counts and
checks them: no pair lost, no pair with two different terminal events, no order created
twice at Zakeke or Smake, dead letters equal to the poison fed, every replica's SIGTERM
answered with exit code 0. Reevoo cannot be asked whether it holds an order, so an order
can reach it twice when a replica dies between Reevoo's 202 and the tracking write: that
count is reported, and must be 0 in a run without kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiokafka.errors import KafkaError

from orderflow.config.settings import Settings, TopicSettings
from orderflow.sandbox.broker import EmbeddedBroker, create_topics, free_port
from orderflow.sandbox.outcomes import OutputReader, expected_pairs, read_topic
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

DLQ_HEADERS = ("orderflow.error.class", "orderflow.error.message", "orderflow.original.topic",
               "orderflow.original.partition", "orderflow.original.offset", "orderflow.failed_at")
MAX_RECORD_BYTES = 64 * 1024  # the replicas' limit: the oversized poison is above it

Say = Callable[[str], None]


@dataclass
class ChaosPlan:
    orders: int = 10_000
    rate: float = 50.0             # orders produced a second
    partitions: int = 6
    replicas: int = 3
    kills: int = 12
    stalls: int = 2
    stall_s: float = 10.0
    freezes: int = 2               # a replica SIGSTOPped for freeze_s, then thawed: a zombie
    freeze_s: float = 10.0
    outage_s: float = 60.0
    outage_vendor: str = "smake"
    throttle_bursts: int = 6
    throttle_s: float = 3.0
    retry_after_s: float = 2.0
    error_rate: float = 0.10
    slow_rate: float = 0.05
    fail_after_effect_rate: float = 0.03  # Zakeke and Smake only: Reevoo cannot be asked
    latency_s: float = 0.02
    request_timeout_s: float = 2.0
    shutdown_grace_s: float = 5.0
    poison: int = 40
    redeliveries: int = 100        # orders published a second time, as at-least-once upstream
    drain_timeout_s: float = 600.0
    seed: int = 7
    work_dir: Path = Path("chaos/results/run")

    @classmethod
    def short(cls, **overrides: Any) -> ChaosPlan:
        """The variant `make test` runs: every kind of fault, in about a minute."""
        plan = cls(orders=600, rate=25.0, kills=3, stalls=1, stall_s=5.0, freezes=0, outage_s=8.0,
                   throttle_bursts=2, poison=12, redeliveries=10, drain_timeout_s=180.0)
        for name, value in overrides.items():
            setattr(plan, name, value)
        return plan

    def problems(self) -> list[str]:
        """What makes this plan impossible to run, in words (empty: fine)."""
        found = []
        if self.orders < 1:
            found.append("orders must be at least 1")
        if self.rate <= 0:
            found.append("rate must be above 0")
        if not 1 <= self.replicas <= self.partitions:
            found.append("replicas must be between 1 and the number of partitions")
        if not 0 <= self.error_rate + self.slow_rate <= 1 or not 0 <= self.fail_after_effect_rate <= 1:
            found.append("fault rates are shares between 0 and 1")
        return found

    @property
    def production_s(self) -> float:
        return self.orders / self.rate


@dataclass
class ChaosReport:
    plan: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def render(self) -> str:
        f = self.figures
        rows = [
            ("orders produced (delivered to the broker)", f["orders_produced"]),
            ("  of which re-deliveries of an order already sent", f["redeliveries_produced"]),
            ("poison records fed", f["poison_produced"]),
            ("(order, vendor) pairs expected", f["pairs_expected"]),
            ("pairs with exactly one terminal status", f["pairs_one_terminal"]),
            ("pairs lost (no terminal status)", f["pairs_lost"]),
            ("pairs with two different terminal events", f["pairs_several_terminals"]),
            ("pairs announced that were never expected", f["pairs_unexpected"]),
            ("terminal statuses by vendor", f["terminal_by_vendor"]),
            ("vendor orders created twice: zakeke", f["duplicates"]["zakeke"]),
            ("vendor orders created twice: smake", f["duplicates"]["smake"]),
            ("vendor orders created twice: reevoo (cannot be asked)", f["duplicates"]["reevoo"]),
            ("  of which a SIGKILL came between Reevoo's 202 and the record", f["reevoo_duplicates_by_kill"]),
            ("completed pairs the vendor does not hold", f["completed_unknown_to_vendor"]),
            ("pairs rejected (a request the vendor found malformed)", f["pairs_rejected"]),
            ("completed Smake pairs with tracking numbers announced", f["shipment_tracking_events"]),
            ("  completed Smake pairs still without them", f["smake_completed_without_tracking"]),
            ("Zakeke lines completed without print files", f["print_files_missing"]),
            ("status/print-files events repeated (same event_id)", f["events_repeated"]),
            ("dead letters (distinct input records)", f["dead_letters_distinct"]),
            ("dead letters written again after a crash", f["dead_letters_repeated"]),
            ("dead letters missing a header", f["dead_letters_without_headers"]),
            ("SIGKILLs", f["kills"]),
            ("broker stalls (SIGSTOP)", f["broker_stalls"]),
            ("replicas frozen past their session (SIGSTOP)", f["replica_freezes"]),
            ("SIGTERM exits (code: count)", f["sigterm_exit_codes"]),
            ("SIGTERM to exit, max seconds", f["sigterm_max_s"]),
            ("vendor requests faulted (5xx/429/slow/dropped)", f["vendor_faults"]),
            ("drain after the last fault, seconds", f["drain_after_last_fault_s"]),
            ("whole run, seconds", f["run_s"]),
            ("replica peak RSS, MiB (max)", f["replica_peak_rss_mib"]),
            ("/healthz answers of running replicas, once a second", f["healthz_answers"]),
            ("replicas that exited on their own (crashes)", len(f["replicas_exited_on_their_own"])),
        ]
        width = max(len(label) for label, _ in rows)
        lines = [f"{label:<{width}}  {value}" for label, value in rows]
        verdict = "PASSED" if self.passed else "FAILED:\n  - " + "\n  - ".join(self.failures)
        return "\n".join(["", "chaos run figures", "-" * (width + 12), *lines, "", verdict])

    def to_json(self) -> str:
        return json.dumps({"plan": self.plan, "figures": self.figures, "failures": self.failures,
                           "timeline": self.timeline}, indent=2, default=str)


# ----------------------------------------------------------------------------- the input


def poison_records(count: int, rng: random.Random) -> list[tuple[bytes, bytes | None]]:
    """Records no order can be read from, one kind after another: each must be dead-lettered."""
    kinds: list[Callable[[int], bytes | None]] = [
        lambda n: b'{"event_type": "order.created", "order": {"order_id": "P' + str(n).encode(),
        lambda n: json.dumps({"event_id": f"poison-{n}", "event_type": "order.created",
                              "schema_version": 1, "order": {"order_id": 42}}).encode(),
        lambda n: json.dumps({"event_type": "order.created",
                              "padding": "x" * (MAX_RECORD_BYTES + n)}).encode(),
        lambda n: b'{"event_id": "\xff\xfe' + str(n).encode() + b'"}',
        lambda n: None,  # a tombstone where an order was expected
    ]
    return [(f"poison-{n}".encode(), kinds[n % len(kinds)](n)) for n in range(count)]


@dataclass
class Stream:
    """What the producer sends, in order: orders, re-deliveries and poison, mixed."""

    records: list[tuple[str, bytes, bytes | None]]  # (kind, key, value)
    events: dict[str, dict[str, Any]]               # order_id -> event


def build_stream(plan: ChaosPlan) -> Stream:
    rng = random.Random(plan.seed)
    events = sample_orders(plan.orders, seed=plan.seed, prefix="CHAOS")
    records: list[tuple[str, bytes, bytes | None]] = [("order", *encode(e)) for e in events]
    for _ in range(plan.redeliveries):
        # Upstream re-sends an order it already sent, a little later (same key, same bytes).
        index = rng.randrange(len(events))
        at = min(len(records), index + rng.randint(1, max(2, len(events) // 10)))
        records.insert(at, ("redelivery", *encode(events[index])))
    for key, value in poison_records(plan.poison, rng):
        records.insert(rng.randrange(len(records) + 1), ("poison", key, value))
    return Stream(records, {e["order"]["order_id"]: e for e in events})


class Producer:
    """confluent-kafka in a thread of its own, paced at `rate` orders a second; remembers
    which records the broker acknowledged (a record never acknowledged was never sent)."""

    def __init__(self, bootstrap: str, topic: str, stream: Stream, rate: float) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._stream = stream
        self._rate = rate
        self.handed_over = 0
        self.delivered: Counter[str] = Counter()
        self.delivered_orders: set[str] = set()
        self.failed: list[str] = []
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self._stream.records)

    def run(self) -> None:
        from confluent_kafka import Producer as KafkaProducer

        producer = KafkaProducer({
            "bootstrap.servers": self._bootstrap, "acks": "all", "enable.idempotence": False,
            "partitioner": "murmur2_random",  # the Java client's: what upstream services use
            "linger.ms": 5, "message.timeout.ms": 300_000, "message.max.bytes": 4 * MAX_RECORD_BYTES,
        })
        began = time.monotonic()
        for n, (kind, key, value) in enumerate(self._stream.records):
            time.sleep(max(0.0, began + n / self._rate - time.monotonic()))

            def delivered(error: Any, message: Any, kind: str = kind, key: bytes = key) -> None:
                with self._lock:
                    if error is not None:
                        self.failed.append(f"{kind} {key!r}: {error}")
                        return
                    self.delivered[kind] += 1
                    if kind == "order":
                        self.delivered_orders.add(key.decode())

            while True:
                try:
                    producer.produce(self._topic, value, key=key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full (a broker stall): wait
                    producer.poll(0.5)
            self.handed_over = n + 1
            producer.poll(0)
        remaining = producer.flush(300)
        if remaining:
            self.failed.append(f"{remaining} records still unacknowledged after 300 s")


# ----------------------------------------------------------------------------- replicas


class Replicas:
    """`orderflow run` processes in numbered slots (each slot keeps its HTTP port)."""

    def __init__(self, env: dict[str, str], slots: int, work_dir: Path, grace_s: float) -> None:
        self._env = env
        self._work_dir = work_dir
        self._grace_s = grace_s
        self.ports = [free_port() for _ in range(slots)]
        self.children: dict[int, Child] = {}
        self.every_child: list[Child] = []
        self.signalled: set[int] = set()  # pids the harness killed or terminated
        self.health_probes: Counter[str] = Counter()  # answers of running replicas' /healthz
        self._logs: dict[int, IO[bytes]] = {}
        self.lock = asyncio.Lock()  # one scaling step or kill at a time
        self.kills = 0
        self.kill_times: list[float] = []  # time.time() of each SIGKILL
        self.sigterm_exits: list[tuple[int | None, float]] = []
        self.peak_rss_mib = 0.0

    def start(self, slot: int) -> Child:
        log = self._logs.get(slot)
        if log is None:
            log = self._logs[slot] = (self._work_dir / f"replica-{slot}.log").open("ab")
        env = {**self._env, "ORDERFLOW_HTTP__PORT": str(self.ports[slot])}
        child = start_service(env, log, name=f"replica-{slot}")
        self.children[slot] = child
        self.every_child.append(child)
        return child

    def running(self) -> list[int]:
        return sorted(slot for slot, child in self.children.items() if child.running)

    def note_memory(self) -> None:
        for child in self.children.values():
            peak = memory_mib(child.pid).get("peak_rss_mib")
            if peak is not None:
                self.peak_rss_mib = max(self.peak_rss_mib, peak)

    async def kill(self, slot: int) -> None:
        child = self.children[slot]
        self.note_memory()
        self.kill_times.append(time.time())
        self.signalled.add(child.pid)
        child.signal(signal.SIGKILL)
        await asyncio.to_thread(child.popen.wait)
        self.kills += 1

    async def terminate(self, slot: int) -> tuple[int | None, float]:
        """SIGTERM and wait: the exit code and the seconds it took."""
        child = self.children[slot]
        self.note_memory()
        started = time.monotonic()
        self.signalled.add(child.pid)
        child.signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.to_thread(child.popen.wait, self._grace_s + 60)
        except Exception:
            child.signal(signal.SIGKILL)
            await asyncio.to_thread(child.popen.wait)
            code = None
        took = time.monotonic() - started
        self.sigterm_exits.append((code, took))
        return code, took

    def exited_on_their_own(self) -> list[tuple[str, int | None]]:
        """Replicas that ended without the harness asking: a crash (must not happen)."""
        return [(c.name, c.popen.returncode) for c in self.every_child
                if c.popen.poll() is not None and c.pid not in self.signalled]

    async def probe_health(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """/healthz of every running replica, once a second: through kills, broker stalls and
        vendor outages the answer should stay 200 (a 503 means a loop stopped turning)."""
        while not stop.is_set():
            for slot in self.running():
                try:
                    async with session.get(f"http://127.0.0.1:{self.ports[slot]}/healthz",
                                           timeout=aiohttp.ClientTimeout(total=2)) as answer:
                        self.health_probes[str(answer.status)] += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.health_probes["no answer"] += 1  # starting, or just killed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def close_logs(self) -> None:
        for log in self._logs.values():
            log.close()


# ----------------------------------------------------------------------------- the run


class ChaosRun:
    def __init__(self, plan: ChaosPlan, say: Say = print) -> None:
        self.plan = plan
        self.say = say
        self.rng = random.Random(plan.seed + 1)
        self.began = 0.0
        self.began_wall = 0.0
        self.timeline: list[tuple[float, str]] = []
        self.last_fault_end = 0.0      # time.time() of the end of the last fault
        self.stalls = 0
        self.freezes = 0

    def note(self, what: str) -> None:
        at = round(time.monotonic() - self.began, 1)
        self.timeline.append((at, what))
        self.say(f"[{at:7.1f}s] {what}")

    def fault_ended(self) -> None:
        self.last_fault_end = max(self.last_fault_end, time.time())

    async def at(self, fraction: float) -> None:
        """Sleep until `fraction` of the production time has passed."""
        await asyncio.sleep(max(0.0, self.began + fraction * self.plan.production_s - time.monotonic()))

    # ---- the faults

    async def scale(self, replicas: Replicas, session: aiohttp.ClientSession) -> None:
        n = self.plan.replicas
        await self.at(0.08)
        async with replicas.lock:
            for slot in range(1, n):
                replicas.start(slot)
            self.note(f"scaled 1 -> {n}")
        await self.at(0.50)
        async with replicas.lock:
            results = await asyncio.gather(*(replicas.terminate(s) for s in replicas.running() if s != 0))
            self.note(f"scaled {n} -> 1 by SIGTERM: exits {[(c, round(t, 1)) for c, t in results]}")
        self.fault_ended()
        await self.at(0.62)
        async with replicas.lock:
            for slot in range(1, n):
                replicas.start(slot)
            self.note(f"scaled 1 -> {n}")
        self.fault_ended()

    async def kill_replicas(self, replicas: Replicas) -> None:
        if self.plan.kills <= 0:
            return
        times = [0.12 + 0.82 * (i + 0.5) / self.plan.kills for i in range(self.plan.kills)]
        for fraction in times:
            await self.at(fraction)
            async with replicas.lock:
                running = replicas.running()
                if not running:
                    continue
                slot = self.rng.choice(running)
                await replicas.kill(slot)
                self.note(f"SIGKILL replica-{slot} (kill {replicas.kills})")
                await asyncio.sleep(self.rng.uniform(0.5, 3.0))
                replicas.start(slot)
            self.fault_ended()

    async def stall_broker(self, broker: EmbeddedBroker) -> None:
        for i in range(self.plan.stalls):
            await self.at(0.25 + 0.5 * i / max(1, self.plan.stalls - 1) if self.plan.stalls > 1 else 0.3)
            broker.pause()
            self.note(f"broker frozen (SIGSTOP) for {self.plan.stall_s:.0f}s")
            await asyncio.sleep(self.plan.stall_s)
            broker.resume()
            self.stalls += 1
            self.note("broker resumed (SIGCONT)")
            self.fault_ended()

    async def freeze_replicas(self, replicas: Replicas) -> None:
        """A replica stopped (a long GC pause, CPU throttling) for longer than its session:
        its partitions move, and when it thaws it must not act as their owner."""
        for i in range(self.plan.freezes):
            await self.at(0.45 + 0.4 * i / max(1, self.plan.freezes - 1) if self.plan.freezes > 1 else 0.45)
            async with replicas.lock:
                running = replicas.running()
                if not running:
                    continue
                slot = self.rng.choice(running)
                child = replicas.children[slot]
                child.signal(signal.SIGSTOP)
                self.note(f"replica-{slot} frozen (SIGSTOP) for {self.plan.freeze_s:.0f}s")
                await asyncio.sleep(self.plan.freeze_s)
                child.signal(signal.SIGCONT)
                self.freezes += 1
                self.note(f"replica-{slot} thawed (SIGCONT)")
            self.fault_ended()

    async def vendor_faults(self, session: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        plan = self.plan

        async def patch(vendor: str, body: dict[str, Any]) -> None:
            async with session.post(f"{urls[vendor]}/_sim/faults", json=body) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"{vendor} refused fault patch {body}: {await answer.text()}")

        async def outage() -> None:
            await self.at(0.38)
            await patch(plan.outage_vendor, {"outage_s": plan.outage_s})
            self.note(f"{plan.outage_vendor} outage for {plan.outage_s:.0f}s (every request 503)")
            await asyncio.sleep(plan.outage_s)
            self.note(f"{plan.outage_vendor} outage over")
            self.fault_ended()

        async def throttles() -> None:
            for i in range(plan.throttle_bursts):
                await self.at(0.1 + 0.8 * (i + 0.3) / max(1, plan.throttle_bursts))
                vendor = VENDORS[i % len(VENDORS)]
                await patch(vendor, {"throttle_s": plan.throttle_s, "retry_after_s": plan.retry_after_s})
                self.note(f"{vendor} answers 429 Retry-After {plan.retry_after_s:.0f} "
                          f"for {plan.throttle_s:.0f}s")
                await asyncio.sleep(plan.throttle_s)
                self.fault_ended()

        await asyncio.gather(outage(), throttles())

    # ---- reading

    async def follow_outputs(self, reader: OutputReader, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await reader.poll(timeout_ms=200)
            except KafkaError as exc:  # a broker stall: the reader waits like anyone else
                self.say(f"reader: {type(exc).__name__}, retrying")
                await asyncio.sleep(1.0)

    async def report_progress(self, producer: Producer, reader: OutputReader, replicas: Replicas,
                              expected: Callable[[], set[tuple[str, str]]], every_s: float = 10.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            replicas.note_memory()
            done = len(expected() & reader.outcomes.finished_pairs())
            self.say(f"[{time.monotonic() - self.began:7.1f}s] produced {producer.handed_over}/"
                     f"{producer.total}, pairs terminal {done}/{len(expected())}, "
                     f"replicas {replicas.running()}")

    # ---- the whole run

    async def run(self) -> ChaosReport:
        plan = self.plan
        plan.work_dir.mkdir(parents=True, exist_ok=True)
        report = ChaosReport(plan={k: str(v) if isinstance(v, Path) else v for k, v in asdict(plan).items()})
        stream = build_stream(plan)
        started_wall = time.monotonic()
        broker = EmbeddedBroker(log_path=plan.work_dir / "broker.log").start()
        sim_log = (plan.work_dir / "simulators.log").open("ab")
        simulators: Child | None = None
        replicas: Replicas | None = None
        try:
            topics = TopicSettings(
                orders_created="chaos.orders.created", status="chaos.orders.status",
                print_files_ready="chaos.orders.print-files-ready",
                dead_letter="chaos.orders.created.dlq", tracking="chaos.orderflow.tracking")
            await create_topics(broker.bootstrap_servers, [
                (name, plan.partitions, None) for name in (
                    topics.orders_created, topics.status, topics.print_files_ready, topics.dead_letter)])
            simulators, urls = start_simulators([
                "--seed", str(plan.seed), "--latency-s", str(plan.latency_s),
                "--latency-jitter-s", str(plan.latency_s),
                "--error-rate", str(plan.error_rate), "--slow-rate", str(plan.slow_rate),
                "--slow-s", str(plan.request_timeout_s * 2),
                "--print-files-delay-s", "2", "--print-files-jitter-s", "2",
                "--smake-seconds-per-state", "1", "--smake-failure-rate", "0.05",
            ], sim_log)
            env = sandbox_env(broker.bootstrap_servers, topics, urls)
            env.update({
                "PYTHONUNBUFFERED": "1",  # a SIGKILLed replica's last log lines are kept
                "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "0.5",
                "ORDERFLOW_POLL__MAX_INTERVAL_S": "2",
                # Smake's tracking numbers come a few seconds after completion (world.py).
                "ORDERFLOW_POLL__TRACKING_INTERVAL_S": "2",
                "ORDERFLOW_SHUTDOWN_GRACE_S": str(plan.shutdown_grace_s),
                "ORDERFLOW_KAFKA__MAX_RECORD_BYTES": str(MAX_RECORD_BYTES),
                **{f"ORDERFLOW_{v.upper()}__REQUEST_TIMEOUT_S": str(plan.request_timeout_s) for v in VENDORS},
                **{f"ORDERFLOW_{v.upper()}__MAX_CONCURRENCY": "16" for v in VENDORS},
            })
            replicas = Replicas(env, plan.replicas, plan.work_dir, plan.shutdown_grace_s)
            async with aiohttp.ClientSession() as session:
                for vendor in ("zakeke", "smake"):
                    async with session.post(f"{urls[vendor]}/_sim/faults", json={
                            "fail_after_effect_rate": plan.fail_after_effect_rate}) as answer:
                        answer.raise_for_status()
                replicas.start(0)
                await wait_ready(session, replicas.ports[0], replicas.children[0])
                reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
                await reader.start()
                await self._drive(report, stream, broker, replicas, session, urls, topics, reader)
                await reader.stop()
        finally:
            if replicas is not None:
                for child in replicas.children.values():
                    if child.running:
                        child.stop(plan.shutdown_grace_s + 30)
                replicas.close_logs()
            if simulators is not None:
                simulators.stop()
            sim_log.close()
            broker.stop()
        report.figures["run_s"] = round(time.monotonic() - started_wall, 1)
        report.timeline = self.timeline
        (plan.work_dir / "report.json").write_text(report.to_json())
        return report

    async def _drive(self, report: ChaosReport, stream: Stream, broker: EmbeddedBroker,
                     replicas: Replicas, session: aiohttp.ClientSession, urls: dict[str, str],
                     topics: TopicSettings, reader: OutputReader) -> None:
        plan = self.plan
        routing = Settings()
        expected_cache: dict[str, set[tuple[str, str]]] = {}
        producer = Producer(broker.bootstrap_servers, topics.orders_created, stream, plan.rate)

        def expected() -> set[tuple[str, str]]:
            pairs: set[tuple[str, str]] = set()
            for order_id in list(producer.delivered_orders):
                if order_id not in expected_cache:
                    expected_cache[order_id] = expected_pairs([stream.events[order_id]], routing)
                pairs |= expected_cache[order_id]
            return pairs

        stop_reading = asyncio.Event()
        following = asyncio.create_task(self.follow_outputs(reader, stop_reading))
        probing = asyncio.create_task(replicas.probe_health(session, stop_reading))
        progress = asyncio.create_task(self.report_progress(producer, reader, replicas, expected))
        self.began = time.monotonic()
        self.began_wall = time.time()
        self.note(f"producing {plan.orders} orders at {plan.rate:.0f}/s with {plan.poison} poison records "
                  f"and {plan.redeliveries} re-deliveries; 1 replica of {plan.replicas}")
        try:
            await asyncio.gather(
                asyncio.to_thread(producer.run),
                self.scale(replicas, session),
                self.kill_replicas(replicas),
                self.stall_broker(broker),
                self.freeze_replicas(replicas),
                self.vendor_faults(session, urls),
            )
            self.note("production and faults over; draining")
            want = expected()
            deadline = time.monotonic() + plan.drain_timeout_s
            while time.monotonic() < deadline and not want <= reader.outcomes.finished_pairs():  # noqa: ASYNC110
                await asyncio.sleep(0.5)  # the reader task fills the outcomes
            drained_at = max((reader.outcomes.terminal_at.get(p, 0.0) for p in want), default=0.0)
            self.note("every pair terminal" if want <= reader.outcomes.finished_pairs()
                      else f"drain timed out after {plan.drain_timeout_s:.0f}s")
            # Smake's tracking numbers come after completion, looked for every 2 s.
            late = time.monotonic() + 30.0
            while time.monotonic() < late and reader.outcomes.completed_without_tracking("smake"):  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            await asyncio.sleep(3.0)  # late repeats, if any, are counted too
            async with replicas.lock:
                exits = await asyncio.gather(*(replicas.terminate(s) for s in replicas.running()))
            self.note(f"every replica stopped by SIGTERM: exits {[(c, round(t, 1)) for c, t in exits]}")
            await asyncio.sleep(1.0)
        finally:
            progress.cancel()
            stop_reading.set()
            await asyncio.gather(following, progress, probing, return_exceptions=True)
        await reader.poll(timeout_ms=1000)

        dead_letters = await read_dead_letters(broker.bootstrap_servers, topics.dead_letter)
        ledgers = {}
        for vendor, url in urls.items():
            async with session.get(f"{url}/_sim/ledger") as answer:
                ledgers[vendor] = await answer.json()
        self.count(report, stream, producer, replicas, reader, want, drained_at, dead_letters, ledgers)

    # ---- the counts

    def count(self, report: ChaosReport, stream: Stream, producer: Producer, replicas: Replicas,
              reader: OutputReader, expected: set[tuple[str, str]], drained_at: float,
              dead_letters: list[dict[str, Any]], ledgers: dict[str, dict[str, Any]]) -> None:
        plan, outcomes = self.plan, reader.outcomes
        finished = outcomes.finished_pairs()
        several = outcomes.pairs_with_several_terminals()
        duplicates = {v: len(ledgers[v]["duplicates"]) for v in VENDORS}
        # Reevoo cannot be asked whether it holds an order: a replica killed after Reevoo took
        # one and before the pair's record was written leaves its next owner no way to know.
        # Such a duplicate's first create lies within one call of a kill: the request was in
        # flight when its sender died (up to a client timeout before the create), or its
        # record was (up to a timeout, plus a broker stall, after). Any other is a defect.
        before, after = plan.request_timeout_s, plan.request_timeout_s + plan.stall_s
        reevoo_by_kill = sum(
            1 for times in ledgers["reevoo"]["duplicate_times"].values()
            if any(times[0] - before <= k <= times[0] + after for k in replicas.kill_times))
        completed_unknown = sum(
            1 for (order_id, vendor), status in outcomes.terminal_status.items()
            if status == "completed" and order_id not in ledgers[vendor]["created"])
        print_files_missing = 0
        for (order_id, vendor), status in outcomes.terminal_status.items():
            if vendor == "zakeke" and status == "completed":
                # Print files are rendered for design lines (a composition line has none).
                lines = [line["line_id"] for line in stream.events[order_id]["order"]["lines"]
                         if line.get("customization", {}).get("design_id")]
                print_files_missing += sum(1 for line in lines
                                           if (order_id, line) not in outcomes.print_files)
        dl_keys = Counter((d["partition"], d["offset"]) for d in dead_letters)
        faults: Counter[str] = Counter()
        for vendor in VENDORS:
            for statuses in ledgers[vendor]["requests"].values():
                for status, n in statuses.items():
                    if status in ("429", "500", "502", "503", "504", "dropped"):
                        faults[f"{vendor} {status}"] += n
        codes = Counter(str(code) for code, _ in replicas.sigterm_exits)
        f = report.figures
        f.update({
            "orders_produced": producer.delivered["order"],
            "redeliveries_produced": producer.delivered["redelivery"],
            "poison_produced": producer.delivered["poison"],
            "producer_failures": producer.failed[:10],
            "pairs_expected": len(expected),
            "pairs_one_terminal": len(expected & finished - several),
            "pairs_lost": len(expected - finished),
            "pairs_several_terminals": len(several),
            "pairs_unexpected": len(finished - expected),
            "terminal_by_vendor": {v: dict(c) for v, c in sorted(outcomes.by_vendor().items())},
            "duplicates": duplicates,
            "reevoo_duplicates_by_kill": reevoo_by_kill,
            "reevoo_duplicate_creates_s": {
                key: [round(t - self.began_wall, 2) for t in times]
                for key, times in ledgers["reevoo"]["duplicate_times"].items()},
            "kill_times_s": [round(t - self.began_wall, 2) for t in replicas.kill_times],
            "duplicate_keys": {v: ledgers[v]["duplicates"] for v in VENDORS},
            "completed_unknown_to_vendor": completed_unknown,
            "pairs_rejected": sum(1 for status in outcomes.terminal_status.values()
                                  if status == "rejected"),
            "smake_completed_without_tracking": len(outcomes.completed_without_tracking("smake")),
            "shipment_tracking_events": sum(
                1 for pair, announced in outcomes.shipment_tracking.items()
                if pair[1] == "smake" and len(announced) > 0
                and outcomes.terminal_status.get(pair) == "completed"),
            "print_files_missing": print_files_missing,
            "events_repeated": outcomes.repeated_events(),
            "dead_letters_distinct": len(dl_keys),
            "dead_letters_repeated": sum(dl_keys.values()) - len(dl_keys),
            "dead_letters_without_headers": sum(1 for d in dead_letters
                                                if not set(DLQ_HEADERS) <= d["headers"]),
            "dead_letter_reasons": dict(Counter(d["class"] for d in dead_letters)),
            "kills": replicas.kills,
            "broker_stalls": self.stalls,
            "replica_freezes": self.freezes,
            "sigterm_exit_codes": dict(codes),
            "sigterm_max_s": round(max((t for _, t in replicas.sigterm_exits), default=0.0), 1),
            "vendor_faults": dict(sorted(faults.items())),
            "vendor_requests": {v: ledgers[v]["total_requests"] for v in VENDORS},
            "drain_after_last_fault_s": round(max(0.0, drained_at - self.last_fault_end), 1),
            "replica_peak_rss_mib": round(replicas.peak_rss_mib, 1),
            "healthz_answers": dict(replicas.health_probes),
            "replicas_exited_on_their_own": replicas.exited_on_their_own(),
        })
        failures = report.failures
        if producer.failed:
            failures.append(f"the producer could not deliver {len(producer.failed)} records")
        if f["pairs_lost"]:
            lost = sorted(expected - finished)[:5]
            failures.append(f"{f['pairs_lost']} pairs lost, e.g. {lost}")
        if several:
            failures.append(f"{len(several)} pairs with two different terminal events, "
                            f"e.g. {sorted(several)[:5]}")
        if f["pairs_unexpected"]:
            failures.append(f"{f['pairs_unexpected']} pairs announced that no order asked for")
        for vendor in ("zakeke", "smake"):
            if duplicates[vendor]:
                failures.append(f"{duplicates[vendor]} orders created twice at {vendor}: "
                                f"{dict(list(ledgers[vendor]['duplicates'].items())[:5])}")
        if duplicates["reevoo"] > reevoo_by_kill:
            failures.append(f"{duplicates['reevoo'] - reevoo_by_kill} orders sent twice to Reevoo "
                            "with no kill during the call")
        if completed_unknown:
            failures.append(f"{completed_unknown} pairs announced completed that the vendor does not hold")
        if f["pairs_rejected"]:
            failures.append(f"{f['pairs_rejected']} pairs rejected (every order fed is valid: a "
                            "refusal means a request the vendor found malformed)")
        if f["smake_completed_without_tracking"]:
            failures.append(f"{f['smake_completed_without_tracking']} completed Smake pairs whose "
                            "tracking numbers were never announced")
        if print_files_missing:
            failures.append(f"{print_files_missing} completed Zakeke lines without a print-files event")
        if f["dead_letters_distinct"] != f["poison_produced"]:
            failures.append(f"{f['dead_letters_distinct']} dead letters for "
                            f"{f['poison_produced']} poison records")
        if f["dead_letters_without_headers"]:
            failures.append(f"{f['dead_letters_without_headers']} dead letters without their headers")
        bad_exits = [(c, round(t, 1)) for c, t in replicas.sigterm_exits
                     if c != 0 or t > plan.shutdown_grace_s + 15]
        if bad_exits:
            failures.append(f"SIGTERM not answered by a clean exit within the grace period: {bad_exits}")
        if replicas.kills < plan.kills:
            failures.append(f"only {replicas.kills} of {plan.kills} kills happened")
        if f["replicas_exited_on_their_own"]:
            failures.append(f"replicas exited without being asked: {f['replicas_exited_on_their_own']}")
        if f["healthz_answers"].get("503"):
            failures.append(f"/healthz answered 503 {f['healthz_answers']['503']} times")
        if self.freezes < plan.freezes:
            failures.append(f"only {self.freezes} of {plan.freezes} replica freezes happened")
        if self.stalls < plan.stalls:
            failures.append(f"only {self.stalls} of {plan.stalls} broker stalls happened")


async def read_dead_letters(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of the dead-letter topic: its original coordinates and its headers."""
    found: list[dict[str, Any]] = []
    for record in await read_topic(bootstrap, topic):
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
        found.append({
            "partition": headers.get("orderflow.original.partition"),
            "offset": headers.get("orderflow.original.offset"),
            "class": headers.get("orderflow.error.class"),
            "headers": set(headers),
        })
    return found


async def run_chaos(plan: ChaosPlan, say: Say = print) -> ChaosReport:
    return await ChaosRun(plan, say).run()
