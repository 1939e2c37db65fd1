"""`POST /webhooks/smake` faces the internet: from outside, against `orderflow run` (a process
of its own, so its memory is its own), what an unauthenticated caller or a replayer can do.

- 400 stalled connections without a signature (and 400 more with a made-up hex one) cost
  the replica less than 64 MiB, /healthz answers 200 within 200 ms throughout, and a genuine
  delivery sent meanwhile is still noted (2xx);
- one genuine delivery replayed 50 times at once makes at most one control record, and
  after a restart of the replica, none;
- a signed delivery holding a lone surrogate is a 400, not a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import statistics
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import service_env

from orderflow.contracts import control
from orderflow.sandbox.broker import free_port
from orderflow.sandbox.outcomes import read_topic
from orderflow.sandbox.processes import memory_mib, start_service, wait_ready
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "whsec-door"
STALLED = 400


def signed(body: bytes) -> dict[str, str]:
    return {"X-Signature": hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


async def stalled_connection(port: int, signature: str | None) -> asyncio.StreamWriter:
    """A POST that declares a 1 MiB body, sends 1 KB of it and then nothing."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = ("POST /webhooks/smake HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1048576\r\n"
            "Content-Type: application/json\r\n"
            + (f"X-Signature: {signature}\r\n" if signature else "") + "\r\n")
    writer.write(head.encode() + b"{" + b" " * 1023)
    await writer.drain()
    return writer


async def health_latencies(port: int, stop: asyncio.Event, seen: list[tuple[int, float]]) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            began = time.monotonic()
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as answer:
                    seen.append((answer.status, time.monotonic() - began))
            except (aiohttp.ClientError, OSError):
                seen.append((0, time.monotonic() - began))
            await asyncio.sleep(0.05)


async def hint_records(bootstrap: str, topic: str, digest_of: bytes) -> int:
    key = control.hint_key("smake", hashlib.sha256(digest_of).hexdigest()[:32])
    return sum(1 for r in await read_topic(bootstrap, topic) if r.key == key and r.value is not None)


async def test_stalled_floods_replays_and_undecodable_text_cannot_hurt_a_replica(
        broker, topics, tmp_path: Path) -> None:
    async with SimulatorServer(SmakeSimulator(seconds_per_state=60, **world.smake_options())) as smake:
        port, hooks = free_port(), free_port()
        env = service_env(broker, topics, smake=smake.base_url) | {
            "ORDERFLOW_HTTP__PORT": str(port), "ORDERFLOW_HTTP__WEBHOOK_PORT": str(hooks),
            "ORDERFLOW_SMAKE__WEBHOOK_TOKEN": TOKEN}
        log_path = tmp_path / "service.log"
        with log_path.open("wb") as log:
            service = start_service(env, log)
        stop, seen = asyncio.Event(), list[tuple[int, float]]()
        writers: list[asyncio.StreamWriter] = []
        try:
            async with aiohttp.ClientSession() as http:
                await wait_ready(http, port, service)
                url = f"http://127.0.0.1:{hooks}/webhooks/smake"
                # Probes and metrics are not on the internet's port, nor webhooks on theirs.
                assert (await http.get(f"http://127.0.0.1:{hooks}/metrics")).status == 404
                assert (await http.post(f"http://127.0.0.1:{port}/webhooks/smake", data=b"{}")).status == 404
                await asyncio.sleep(1)
                rss_before = memory_mib(service.pid)["rss_mib"]
                prober = asyncio.create_task(health_latencies(port, stop, seen))
                for n in range(STALLED):
                    writers.append(await stalled_connection(hooks, None))
                    writers.append(await stalled_connection(hooks, "ab" * 32 if n % 2 else None))
                genuine = json.dumps({"event": "order.completed", "data": {
                    "id": 4242, "external_identifier": "DOOR-1", "state": "completed"}}).encode()
                async with http.post(url, data=genuine, headers=signed(genuine)) as answer:
                    during_flood = answer.status
                await asyncio.sleep(3)
                rss_flooded = memory_mib(service.pid)["rss_mib"]
                for writer in writers:
                    writer.close()
                writers.clear()

                # One genuine delivery, captured and replayed 50 times at once.
                replayed = json.dumps({"event": "order.prepared", "data": {
                    "id": 777, "external_identifier": "DOOR-2", "state": "prepared"}}).encode()
                answers = await asyncio.gather(*[
                    http.post(url, data=replayed, headers=signed(replayed)) for _ in range(50)])
                statuses = sorted({a.status for a in answers})
                surrogate = b'{"event":"order.\\ud800","data":{"id":"\\udfff"}}'
                async with http.post(url, data=surrogate, headers=signed(surrogate)) as answer:
                    surrogate_status = answer.status
                stop.set()
                await prober
            records_after_replay = await hint_records(broker.bootstrap_servers, topics.control, replayed)

            # The same capture after a restart: the replica learns it was noted.
            service.stop()
            with log_path.open("ab") as log:
                service = start_service(env, log)
            async with aiohttp.ClientSession() as http:
                await wait_ready(http, port, service)
                async with http.post(url, data=replayed, headers=signed(replayed)) as answer:
                    after_restart = answer.status
            records_after_restart = await hint_records(broker.bootstrap_servers, topics.control,
                                                       replayed)
        finally:
            stop.set()
            for writer in writers:
                writer.close()
            service.stop()
    log_text = log_path.read_text(errors="replace")
    slowest = max(s for _, s in seen)
    median = statistics.median(s for _, s in seen)
    print(f"\nwebhook door: RSS {rss_before:.0f} -> {rss_flooded:.0f} MiB under {2 * STALLED} "
          f"stalled connections; /healthz {len(seen)} probes, median {median * 1000:.0f} ms, "
          f"slowest {slowest * 1000:.0f} ms; genuine delivery during the flood: {during_flood}; "
          f"50 replays: answers {statuses}, {records_after_replay} control record(s); after a "
          f"restart: {after_restart}, {records_after_restart} record(s)")
    assert {status for status, _ in seen} == {200}, seen
    assert slowest < 0.2, f"/healthz took {slowest:.3f} s under the flood"
    assert rss_flooded - rss_before < 64, f"RSS grew {rss_flooded - rss_before:.0f} MiB"
    assert during_flood in (200, 202)
    assert set(statuses) <= {200, 202}
    assert records_after_replay == 1
    assert after_restart == 200 and records_after_restart == 1
    assert surrogate_status == 400
    assert "Traceback" not in log_text, log_text[-3000:]
