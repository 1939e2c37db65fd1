"""Readings taken during a benchmark round: CPU of the processes, the service's vendor
request metrics, the simulators' ledgers, the intake's committed offsets, percentiles."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from orderflow.sandbox.processes import (
    cpu_seconds,
)


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
