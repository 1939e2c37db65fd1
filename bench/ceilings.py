"""The ceilings and floors measured beside the pipeline in the same run: raw aiokafka
consume, raw aiohttp requests against the simulators, one Kafka hop."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.observe import percentile
from bench.rig import Bench
from orderflow.adapters.reevoo import reevoo_order_body
from orderflow.consumer.decode import Undecodable, decode_input
from orderflow.contracts.events import OrderCreated
from orderflow.sandbox.simulators import defaults
from orderflow.sandbox.simulators.defaults import VENDORS

ZAKEKE_CLIENT = (defaults.ZAKEKE_CLIENT_ID, defaults.ZAKEKE_CLIENT_SECRET)


SMAKE_KEY = defaults.SMAKE_API_KEY


REEVOO_CLIENT = (defaults.REEVOO_API_KEY, defaults.REEVOO_API_SECRET)


REEVOO_TRKREF = defaults.REEVOO_TRKREF


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
    invalid = sum(isinstance(decode_input(v, 1 << 20), Undecodable) for v in values)
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
