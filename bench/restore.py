"""Restore benchmark: how long a replica takes to rebuild its job table from a large tracking
topic, what that costs in memory, and whether the service stays responsive meanwhile.

    python -m bench.restore [--records 1000000] [--repeat 3] [...]     (or: make bench-restore)

One run starts the embedded broker, creates the input topic and the compacted tracking topic
(`--partitions`, 6 by default) and fills the tracking topic once with `--records` records made
by the service's own `encode_job`, batched per partition. The mix, for R records:

- 90% of R are live pairs, each its latest record: 90% of them finished (`phase: done`,
  `order: null`, finished within the retention period, so the service has nothing to sweep)
  and 10% active (submit or poll, carrying their order, built from the sandbox's samples);
- 6% of R are superseded versions: an earlier state (with its order) of a pair whose later
  record follows, half of them of active pairs and half of finished ones;
- 4% of R are forgotten pairs: a finished record, then its tombstone (2% each).

A later version follows its earlier one a few thousand records on, as in a live topic. The
embedded broker does not compact, so every record is read back: the worst case of a topic
whose head has not been cleaned yet.

Then `--repeat` rounds, each of:

1. raw consume ceiling: a plain AIOKafkaConsumer (partitions assigned, no group, the restore's
   fetch sizes) reads the whole tracking topic without looking at the records;
2. the service: `python -m orderflow run` as a subprocess (a fresh consumer group, every vendor
   disabled, so nothing but the restore runs), timed from the moment it is spawned. /healthz
   and /readyz are polled every `--probe-interval` seconds from then on. Measured: the time to
   /readyz 200, the restore itself (the service's `orderflow_tracking_restore_seconds`), the
   records it restored, its CPU time and resident memory (VmRSS, VmHWM) once ready, and every
   /healthz answer until ready: non-200 answers (timeouts included) and the slowest answer,
   which is how long the event loop went without serving a request.

Medians, the restore rate and the ratio restore/raw consume are printed as a table and written
with every round's figures to `bench/results/restore-latest.json`, next to
`restore-service.log` and `restore-broker.log`. The machine is shared and noisy: read ratios
and medians. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from orderflow.adapters.zakeke.adapter import ZakekeAdapter
from orderflow.config.settings import TopicSettings, TrackingSettings
from orderflow.consumer.jobs import Job, Phase, tracking_key
from orderflow.consumer.tracking_record import encode_job
from orderflow.contracts.events import Order, Vendor, VendorStatus
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, free_port
from orderflow.sandbox.processes import cpu_seconds, memory_mib, sandbox_env, start_service
from orderflow.sandbox.samples import sample_order_event

RESULTS = Path(__file__).resolve().parent / "results"

# The restore's own fetch sizes (TrackingStore.restore), so the raw ceiling reads as it does.
FETCH_MAX_BYTES = 64 * 1024 * 1024
MAX_PARTITION_FETCH_BYTES = 16 * 1024 * 1024

# How far (in pairs) a pair's later record follows its earlier one.
SUPERSEDE_DISTANCE = 5_000


# ----------------------------------------------------------------------------- the topic's content


@dataclass(frozen=True)
class Mix:
    records: int
    finished: int            # live pairs whose latest record is `done`
    active: int              # live pairs whose latest record is submit or poll
    superseded_active: int   # earlier versions of active pairs
    superseded_finished: int  # earlier versions of finished pairs
    forgotten: int           # pairs finished then tombstoned (two records each)

    waiting_only: bool = False  # every pair waiting at its vendor (`--mix waiting`)

    @classmethod
    def all_waiting(cls, records: int) -> Mix:
        """Every record a pair the vendor accepted and is working on: 90% at Smake (days of
        production), 10% at Zakeke (hours of print files), as the service keeps them (only
        what polls read: `polling_view`)."""
        return cls(records=records, finished=0, active=records, superseded_active=0,
                   superseded_finished=0, forgotten=0, waiting_only=True)

    @classmethod
    def of(cls, records: int) -> Mix:
        forgotten = round(records * 0.02)
        superseded = round(records * 0.06)
        live = records - superseded - 2 * forgotten
        active = round(live * 0.10)
        return cls(records=records, finished=live - active, active=active,
                   superseded_active=superseded // 2, superseded_finished=superseded - superseded // 2,
                   forgotten=forgotten)

    def describe(self) -> str:
        if self.waiting_only:
            return (f"{self.records:,} records, every one a pair waiting at its vendor (90% "
                    f"Smake, 10% Zakeke), kept as the service keeps accepted pairs")
        return (f"{self.records:,} records: {self.finished:,} finished pairs and {self.active:,} "
                f"active pairs (latest records), {self.superseded_active + self.superseded_finished:,} "
                f"superseded versions ({self.superseded_active:,} of active pairs, "
                f"{self.superseded_finished:,} of finished ones), {self.forgotten:,} forgotten pairs "
                f"(a done record, then a tombstone: {2 * self.forgotten:,} records)")

    def as_dict(self) -> dict[str, int]:
        return {"records": self.records, "waiting_only": int(self.waiting_only),
                "finished_pairs": self.finished, "active_pairs": self.active,
                "superseded_versions_of_active": self.superseded_active,
                "superseded_versions_of_finished": self.superseded_finished,
                "tombstones": self.forgotten, "done_records_before_tombstones": self.forgotten,
                "distinct_keys": self.finished + self.active + self.forgotten}


_FINISHED, _ACTIVE, _FORGOTTEN = 0, 1, 2
_TERMINAL = (VendorStatus.COMPLETED, VendorStatus.FAILED, VendorStatus.REJECTED,
             VendorStatus.CANCELLED, VendorStatus.TIMED_OUT)
_TERMINAL_WEIGHTS = (0.94, 0.02, 0.01, 0.02, 0.01)


class TrackingHistory:
    """The tracking records of `mix`, per partition, in the order a live topic would hold
    them. Pair j belongs to order j // 2 (every order has a Reevoo pair and a Zakeke or Smake
    pair); an order's pairs share the partition of its input record, order % partitions."""

    def __init__(self, mix: Mix, partitions: int, seed: int, now: float,
                 retention_s: float = TrackingSettings().terminal_retention_s,
                 order_pool: int = 500) -> None:
        self.mix = mix
        self.partitions = partitions
        self.now = now
        self.rng = random.Random(seed)
        # Finished within the retention period, with a day to spare: nothing to sweep.
        self.oldest = now - max(60.0, retention_s - 86_400)
        sample_rng = random.Random(seed)
        self.orders = [Order.model_validate(sample_order_event(i, sample_rng, prefix="RESTORE")["order"])
                       for i in range(order_pool)]
        self.zakeke_orders = [Order.model_validate(sample_order_event(
            i, sample_rng, prefix="RESTORE", shape="zakeke")["order"]) for i in range(order_pool)]
        kinds = ([_FINISHED] * mix.finished + [_ACTIVE] * mix.active + [_FORGOTTEN] * mix.forgotten)
        self.rng.shuffle(kinds)
        self.kinds = kinds
        active = [j for j, k in enumerate(kinds) if k == _ACTIVE]
        finished = [j for j, k in enumerate(kinds) if k == _FINISHED]
        self.superseded = set(self.rng.sample(active, mix.superseded_active))
        self.superseded.update(self.rng.sample(finished, mix.superseded_finished))

    def pair(self, j: int) -> tuple[str, Vendor, int, int]:
        if self.mix.waiting_only:
            vendor = Vendor.ZAKEKE if j % 10 == 0 else Vendor.SMAKE
            return f"RESTORE-{j:07d}", vendor, j % self.partitions, j
        n = j // 2
        vendor = Vendor.REEVOO if j % 2 == 0 else (Vendor.ZAKEKE if n % 3 else Vendor.SMAKE)
        return f"RESTORE-{n:07d}", vendor, n % self.partitions, n

    def _waiting_job(self, j: int) -> Job:
        order_id, vendor, partition, n = self.pair(j)
        rng = self.rng
        pool = self.zakeke_orders if vendor is Vendor.ZAKEKE else self.orders
        order = pool[n % len(pool)].model_copy(update={"order_id": order_id})
        # As the service keeps an accepted pair (Scheduler._compacted).
        view = ZakekeAdapter.polling_view(None, order) if vendor is Vendor.ZAKEKE else None  # type: ignore[arg-type]
        created = rng.uniform(self.now - 86_400, self.now - 60)
        return Job(order_id=order_id, vendor=vendor, partition=partition,
                   source_event_id=f"{rng.getrandbits(128):032x}", order=view, order_view=True,
                   phase=Phase.POLL, status=rng.choice((VendorStatus.SUBMITTED,
                                                        VendorStatus.IN_PROGRESS)),
                   vendor_order_ref=str(rng.randrange(10**9)),
                   vendor_state=rng.choice(("checking", "preparing", "prepared")),
                   polls_without_change=rng.randrange(8), created_at=created, intent_at=created,
                   # Not due while measured: the vendors are not there.
                   due_at=self.now + rng.uniform(3_600, 7_200))

    def _job(self, j: int, phase: Phase, *, with_order: bool) -> Job:
        order_id, vendor, partition, n = self.pair(j)
        rng = self.rng
        order = (self.orders[n % len(self.orders)].model_copy(update={"order_id": order_id})
                 if with_order else None)
        created = rng.uniform(self.oldest, self.now - 60)
        job = Job(order_id=order_id, vendor=vendor, partition=partition,
                  source_event_id=f"{rng.getrandbits(128):032x}", order=order, phase=phase,
                  created_at=created, due_at=self.now + rng.uniform(1, 300))
        if phase is Phase.POLL:
            job = replace(job, status=rng.choice((VendorStatus.SUBMITTED, VendorStatus.IN_PROGRESS)),
                          vendor_order_ref=str(rng.randrange(10**9)), vendor_state="preparing",
                          polls_without_change=rng.randrange(4))
        elif phase is Phase.DONE:
            status = rng.choices(_TERMINAL, _TERMINAL_WEIGHTS)[0]
            finished = min(self.now - 1, created + rng.uniform(1, 3_600))
            job = replace(job, status=status, vendor_order_ref=str(rng.randrange(10**9)),
                          vendor_state=str(status), finished_at=finished, due_at=finished)
        return job

    def records(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(partition, key, value) in topic order; value None is a tombstone."""
        later: collections.deque[tuple[int, int, bytes, bytes | None]] = collections.deque()
        if self.mix.waiting_only:
            for j in range(self.mix.records):
                waiting = self._waiting_job(j)
                yield waiting.partition, tracking_key(waiting.key), encode_job(waiting)
            return
        for j, kind in enumerate(self.kinds):
            while later and later[0][0] <= j:
                _, partition, key, value = later.popleft()
                yield partition, key, value
            job: Job
            if kind == _FORGOTTEN:
                job = self._job(j, Phase.DONE, with_order=False)
                yield job.partition, tracking_key(job.key), encode_job(job)
                later.append((j + SUPERSEDE_DISTANCE, job.partition, tracking_key(job.key), None))
                continue
            final_phase = Phase.DONE if kind == _FINISHED else self.rng.choice((Phase.SUBMIT, Phase.POLL))
            if j in self.superseded:
                earlier = self._job(j, Phase.SUBMIT if final_phase is not Phase.DONE else Phase.POLL,
                                    with_order=True)
                yield earlier.partition, tracking_key(earlier.key), encode_job(earlier)
                if final_phase is Phase.SUBMIT:
                    final_phase = Phase.POLL  # a later version of a submit job has moved on
                job = self._job(j, final_phase, with_order=final_phase is not Phase.DONE)
                later.append((j + SUPERSEDE_DISTANCE, job.partition, tracking_key(job.key),
                              encode_job(job)))
                continue
            job = self._job(j, final_phase, with_order=final_phase is not Phase.DONE)
            yield job.partition, tracking_key(job.key), encode_job(job)
        for _, partition, key, value in later:
            yield partition, key, value


async def fill(bootstrap: str, topic: str, history: TrackingHistory) -> dict[str, Any]:
    """Produce the history in batches of up to 512 KiB per partition, a bounded number of
    batches in flight."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    started = time.monotonic()
    sent = 0
    value_bytes = 0
    try:
        builders = {p: producer.create_batch() for p in range(history.partitions)}
        pending: collections.deque[asyncio.Future[Any]] = collections.deque()

        async def flush(partition: int) -> None:
            builder = builders[partition]
            builders[partition] = producer.create_batch()
            pending.append(await producer.send_batch(builder, topic, partition=partition))
            while len(pending) > 4 * history.partitions:
                await pending.popleft()

        for partition, key, value in history.records():
            if builders[partition].append(key=key, value=value, timestamp=None) is None:
                await flush(partition)
                if builders[partition].append(key=key, value=value, timestamp=None) is None:
                    raise RuntimeError(f"a record of {len(value or b'')} bytes fits no batch")
            sent += 1
            value_bytes += len(value or b"")
            if sent % 100_000 == 0:
                print(f"  filled {sent:,} records ({time.monotonic() - started:.0f} s)", flush=True)
        for partition in builders:
            if builders[partition].record_count():
                await flush(partition)
        while pending:
            await pending.popleft()
    finally:
        await producer.stop()
    seconds = time.monotonic() - started
    return {"records": sent, "value_mib": round(value_bytes / 2**20, 1), "seconds": round(seconds, 1),
            "records_per_s": round(sent / seconds)}


# ----------------------------------------------------------------------------- measurements


async def raw_consume(bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    """The whole tracking topic read by a plain consumer, records counted, never parsed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_bytes=FETCH_MAX_BYTES,
                                max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        count = 0
        started = time.monotonic()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=20_000)
            count += sum(len(records) for records in batch.values())
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    # The embedded broker reports the end inside the last batch: take the rest
                    # of what was fetched with it, as the restore does.
                    while tail := await consumer.getmany(tp, timeout_ms=0, max_records=20_000):
                        count += sum(len(records) for records in tail.values())
        seconds = time.monotonic() - started
    finally:
        await consumer.stop()
    return {"records": count, "seconds": seconds, "records_per_s": count / seconds}


# Waiting pairs need their vendors' lanes (their due queues are part of what is measured);
# nothing is due while measured, so nothing calls this address.
NOWHERE = {"smake": "http://127.0.0.1:9/v2/apps/1", "zakeke": "http://127.0.0.1:9"}


def service_env(broker: SandboxBroker, topics: TopicSettings, group: str, port: int,
                log_level: str, waiting: bool = False) -> dict[str, str]:
    """The sandbox's ORDERFLOW_* environment with every vendor disabled (for `--mix waiting`,
    Smake and Zakeke enabled, nothing due): the service restores and then idles."""
    env = sandbox_env(broker.bootstrap_servers, topics, NOWHERE if waiting else {}, http_port=port,
                      group_id=group, abilities=broker.abilities)
    env.update({"ORDERFLOW_SHUTDOWN_GRACE_S": "5", "ORDERFLOW_LOG__LEVEL": log_level})
    return env


@dataclass
class Probe:
    """/healthz answers: (seconds since spawn, status or None for no answer, seconds taken)."""

    answers: list[tuple[float, int | None, float]]

    def summary(self, until: float) -> dict[str, Any]:
        # Before the HTTP server listens, a refused connection is not an answer.
        window = [a for a in self.answers if a[0] <= until]
        first = next((i for i, a in enumerate(window) if a[1] is not None), len(window))
        window = window[first:]
        return {"probes": len(window), "non_200": sum(1 for _, status, _ in window if status != 200),
                "max_latency_ms": max((t for _, _, t in window), default=0.0) * 1000,
                "p99_latency_ms": (statistics.quantiles([t for _, _, t in window], n=100)[98] * 1000
                                   if len(window) >= 2 else None)}


async def probe_forever(session: aiohttp.ClientSession, url: str, spawned: float, interval_s: float,
                        into: list[tuple[float, int | None, float]]) -> None:
    while True:
        sent = time.monotonic()
        status: int | None = None
        try:
            async with session.get(url) as answer:
                await answer.read()
                status = answer.status
        except (aiohttp.ClientConnectionError, OSError):
            status = None  # not listening yet, or gone
        except TimeoutError:
            status = 0  # listening but silent past the timeout: counts as not 200
        took = time.monotonic() - sent
        into.append((sent - spawned, status, took))
        await asyncio.sleep(max(0.0, interval_s - took))


async def scrape(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        text = await answer.text()
    wanted = {"orderflow_tracking_restore_seconds_sum", "orderflow_tracking_restore_seconds_count",
              "orderflow_tracking_records_restored_total"}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                found[sample.name] = sample.value
    return found


def restored_partitions(log_path: Path, since: int) -> list[dict[str, Any]]:
    """The service's "tracking restored" lines written after byte `since` of its log."""
    found = []
    with open(log_path, "rb") as log:
        log.seek(since)
        for line in log:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == "tracking restored":
                    found.append(entry)
    return found


async def service_round(args: argparse.Namespace, broker: SandboxBroker, topics: TopicSettings,
                        index: int, log: IO[bytes], log_path: Path) -> dict[str, Any]:
    port = free_port()
    env = service_env(broker, topics, f"bench-restore-{os.getpid()}-{index}", port, args.log_level,
                      waiting=args.mix == "waiting")
    log.flush()
    log_start = log.tell()
    health: list[tuple[float, int | None, float]] = []
    timeout = aiohttp.ClientTimeout(total=args.probe_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as health_session, \
            aiohttp.ClientSession(timeout=timeout) as session:
        spawned = time.monotonic()
        service = start_service(env, log)
        prober = asyncio.create_task(probe_forever(
            health_session, f"http://127.0.0.1:{port}/healthz", spawned, args.probe_interval, health))
        try:
            ready_at = None
            deadline = spawned + args.ready_timeout
            while ready_at is None:
                if not service.running:
                    raise RuntimeError(f"the service exited with {service.popen.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service was not ready within {args.ready_timeout} s")
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                        if answer.status == 200:
                            ready_at = time.monotonic() - spawned
                            break
                await asyncio.sleep(args.probe_interval)
            memory = memory_mib(service.pid)
            cpu = cpu_seconds(service.pid)
            metrics = await scrape(session, port)
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
            service.stop(timeout_s=30)
    log.flush()
    partitions = restored_partitions(log_path, log_start)
    count = metrics.get("orderflow_tracking_restore_seconds_count", 0)
    figures: dict[str, Any] = {
        "ready_s": ready_at,
        "restore_s": metrics.get("orderflow_tracking_restore_seconds_sum"),
        "restore_calls": count,
        "records_restored": metrics.get("orderflow_tracking_records_restored_total"),
        "partitions_restored": len(partitions),
        "active_restored": sum(int(p.get("active", 0)) for p in partitions),
        "finished_restored": sum(int(p.get("finished", 0)) for p in partitions),
        "cpu_s_to_ready": cpu,
        **memory,
        "healthz": Probe(health).summary(until=ready_at),
        "exit_code": service.popen.returncode,
    }
    return figures


# ----------------------------------------------------------------------------- the run


def flat(round_: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, float | None]:
    restore_s = round_["restore_s"]
    restored = round_["records_restored"]
    rate = restored / restore_s if restore_s and restored else None
    return {
        "ready_s": round_["ready_s"],
        "restore_s": restore_s,
        "restore_records_per_s": rate,
        "records_restored": restored,
        "active_restored": round_["active_restored"],
        "finished_restored": round_["finished_restored"],
        "cpu_s_to_ready": round_["cpu_s_to_ready"],
        "rss_mib": round_.get("rss_mib"),
        "peak_rss_mib": round_.get("peak_rss_mib"),
        "healthz_probes": round_["healthz"]["probes"],
        "healthz_non_200": round_["healthz"]["non_200"],
        "healthz_max_ms": round_["healthz"]["max_latency_ms"],
        "healthz_p99_ms": round_["healthz"]["p99_latency_ms"],
        "raw_consume_s": raw["seconds"],
        "raw_consume_records_per_s": raw["records_per_s"],
        "ratio_restore_over_raw": rate / raw["records_per_s"] if rate else None,
    }


ROWS: tuple[tuple[str, str, str], ...] = (
    ("time to /readyz 200, from spawn, s", "ready_s", "{:.1f}"),
    ("restore, s (orderflow_tracking_restore_seconds)", "restore_s", "{:.1f}"),
    ("restore, records/s", "restore_records_per_s", "{:,.0f}"),
    ("records restored", "records_restored", "{:,.0f}"),
    ("  active pairs in the table", "active_restored", "{:,.0f}"),
    ("  finished pairs in the table", "finished_restored", "{:,.0f}"),
    ("service CPU s, spawn to ready", "cpu_s_to_ready", "{:.1f}"),
    ("service RSS once ready, MiB (VmRSS)", "rss_mib", "{:.0f}"),
    ("service peak RSS, MiB (VmHWM)", "peak_rss_mib", "{:.0f}"),
    ("/healthz probes until ready", "healthz_probes", "{:.0f}"),
    ("/healthz non-200 answers", "healthz_non_200", "{:.0f}"),
    ("/healthz slowest answer, ms", "healthz_max_ms", "{:.0f}"),
    ("/healthz p99 answer, ms", "healthz_p99_ms", "{:.0f}"),
    ("ceiling: raw aiokafka consume, s", "raw_consume_s", "{:.1f}"),
    ("ceiling: raw aiokafka consume, records/s", "raw_consume_records_per_s", "{:,.0f}"),
    ("ratio: restore records/s / raw records/s", "ratio_restore_over_raw", "{:.2f}"),
)


def medians(rows: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] is not None]
        found[key] = statistics.median(values) if values else None  # type: ignore[type-var]
    return found


def render_table(rows: Sequence[Mapping[str, float | None]], median: Mapping[str, float | None]) -> str:
    def show(value: float | None, fmt: str) -> str:
        return "-" if value is None else fmt.format(value)

    header = f"{'':<48}{'median':>11}" + "".join(f"{'r' + str(i + 1):>11}" for i in range(len(rows)))
    lines = [header, "-" * len(header)]
    for label, key, fmt in ROWS:
        lines.append(f"{label:<48}{show(median[key], fmt):>11}"
                     + "".join(f"{show(r[key], fmt):>11}" for r in rows))
    return "\n".join(lines)


async def run(args: argparse.Namespace, broker: SandboxBroker, log: IO[bytes]) -> dict[str, Any]:
    load_before = os.getloadavg()
    bootstrap = broker.bootstrap_servers
    topics = TopicSettings(orders_created="bench.orders.created", status="bench.orders.status",
                           print_files_ready="bench.orders.print-files-ready",
                           dead_letter="bench.orders.created.dlq", tracking="bench.orderflow.tracking")
    # The tracking topic as the service itself creates it (orderflow.consumer.kafka.prepare_topics).
    await create_topics(bootstrap, [
        (topics.orders_created, args.partitions, None), (topics.status, args.partitions, None),
        (topics.print_files_ready, args.partitions, None), (topics.dead_letter, args.partitions, None),
        (topics.tracking, args.partitions, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}),
    ])
    mix = Mix.all_waiting(args.records) if args.mix == "waiting" else Mix.of(args.records)
    print(f"restore bench: {mix.describe()}; {args.partitions} partitions; {args.repeat} rounds; "
          f"{os.cpu_count()} CPUs, load {load_before[0]:.2f} before", flush=True)
    history = TrackingHistory(mix, args.partitions, args.seed, time.time())
    filled = await fill(bootstrap, topics.tracking, history)
    del history
    print(f"  filled {filled['records']:,} records, {filled['value_mib']} MiB of values, in "
          f"{filled['seconds']} s ({filled['records_per_s']:,}/s)", flush=True)

    log_path = Path(log.name)
    rounds: list[dict[str, Any]] = []
    rows: list[dict[str, float | None]] = []
    for index in range(1, args.repeat + 1):
        raw = await raw_consume(bootstrap, topics.tracking, args.partitions)
        figures = await service_round(args, broker, topics, index, log, log_path)
        rounds.append({"service": figures, "raw_consume": raw})
        rows.append(flat(figures, raw))
        row = rows[-1]
        print(f"  round {index}: ready in {row['ready_s']:.1f} s, restore {row['restore_s'] or 0:.1f} s, "
              f"RSS {row['rss_mib'] or 0:.0f} MiB (peak {row['peak_rss_mib'] or 0:.0f}), /healthz "
              f"{row['healthz_non_200']:.0f} non-200, slowest {row['healthz_max_ms']:.0f} ms; raw "
              f"consume {row['raw_consume_records_per_s']:,.0f} records/s", flush=True)
        for name, read in (("the service", row["records_restored"]), ("the raw consumer", raw["records"])):
            if read != filled["records"]:
                print(f"  WARNING: {name} read {read} records of {filled['records']}", flush=True)
    median = medians(rows)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items()},
        "mix": mix.as_dict(),
        "mix_description": mix.describe(),
        "fill": filled,
        "rounds": rounds,
        "table": rows,
        "median": median,
        "rendered": render_table(rows, median),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.restore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="tracking records to fill")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the table shows medians)")
    parser.add_argument("--partitions", type=int, default=6, help="input and tracking partitions")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--probe-interval", type=float, default=0.1,
                        help="seconds between /healthz (and /readyz) probes")
    parser.add_argument("--probe-timeout", type=float, default=10.0,
                        help="a probe unanswered this long counts as non-200")
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--mix", choices=("history", "waiting"), default="history",
                        help="history: a long history, 10%% of pairs active (the default); "
                             "waiting: every pair waiting at Smake or Zakeke")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with chosen_broker(log_path=RESULTS / "restore-broker.log") as broker, \
            open(RESULTS / "restore-service.log", "wb") as log:
        result = asyncio.run(run(args, broker, log))
    print()
    print(result["rendered"])
    out = RESULTS / ("restore-latest.json" if args.mix == "history" else
                     f"restore-{args.mix}-latest.json")
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
