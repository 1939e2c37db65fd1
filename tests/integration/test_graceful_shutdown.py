"""Three `orderflow run` replicas share a consumer group under a steady stream of orders; one
gets SIGTERM while vendor calls are in flight and Zakeke pairs wait for their print files.

What an operator checks: the stopped replica exits 0 within ORDERFLOW_SHUTDOWN_GRACE_S plus
the time to leave the group, its log shows it drained without cancelling a call, the others
take its partitions over, every (order, vendor) pair ends exactly once, no vendor holds an
order twice (not even Reevoo, which cannot be asked before a create), nothing is
dead-lettered, no replica logs an error, and the others stop cleanly too.

Two ways a replica goes: scaled down (the others take over), and in a rolling update, where a
new replica joins the group (`maxSurge: 1`) and the old one gets SIGTERM while the rebalance
this starts is under way: it must finish that rebalance without taking anything, then leave.

The replicas are processes configured only through ORDERFLOW_* variables; the orders are
produced with confluent-kafka (librdkafka), not orderflow's own client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import KafkaError, Message, Producer
from conftest import PARTITIONS, needs, service_env, settings_from

from orderflow.sandbox.outcomes import OutputReader, expected_pairs
from orderflow.sandbox.samples import encode, sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import FaultKnobs, SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRACE_S = 5.0
# Beyond the grace period: leaving the group and stopping the clients. Generous on purpose:
# it bounds a hang, it does not time the shutdown.
LEAVE_MARGIN_S = 10.0
ORDERS = 120
RATE_PER_S = 10.0
SIGTERM_AFTER_S = 5.0


class Replica:
    """One `orderflow run` process, its log, and its operations port once it has started."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "orderflow", "run"],
                                            env={**os.environ, **env}, stdout=log, stderr=log)
        self.port: int | None = None
        self.signalled_at: float | None = None

    def log_events(self, since: int = 0) -> list[dict[str, Any]]:
        """The JSON lines of its log, past its first `since` bytes."""
        events = []
        with self.log_path.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.log_events() if e.get("event") == event]

    def partitions_taken(self, held: set[int], since: int) -> list[int]:
        """The partitions that moved to it in the assignments its log shows past `since`
        bytes (those it did not hold before each), when it held `held` at that point."""
        taken: list[int] = []
        for event in self.log_events(since):
            if event.get("event") == "partitions assigned":
                now = set(event["partitions"])
                taken += sorted(now - held)
                held = now
        return taken

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    async def wait_for_line(self, text: str, since: int, timeout_s: float) -> None:
        """Until the log has `text` past its first `since` bytes."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.log_path.open("rb") as log:
                log.seek(since)
                if text.encode() in log.read():
                    return
            assert time.monotonic() < deadline, f"{self.name} never logged {text!r}"
            await asyncio.sleep(0.05)

    def error_lines(self) -> list[str]:
        """orderflow's own errors (JSON) and those of its libraries (standard logging)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines
                if '"level": "error"' in line or '"level": "critical"' in line
                or " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]

    async def owned_partitions(self, http: aiohttp.ClientSession) -> set[int] | None:
        """The partitions it owns once /readyz says ready, else None."""
        if self.port is None:
            started = self.logged("orderflow started")
            if not started:
                return None
            self.port = int(started[0]["http_port"])
        try:
            async with http.get(f"http://127.0.0.1:{self.port}/readyz") as answer:
                text = await answer.text()
                if answer.status != 200:
                    return None
        except aiohttp.ClientError:
            return None
        found = re.search(r"owning partitions \[([\d, ]*)\]", text)
        assert found, text
        return {int(p) for p in found.group(1).split(",") if p.strip()}

    def terminate(self) -> None:
        self.signalled_at = time.monotonic()
        self.process.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout_s: float) -> tuple[int | None, float]:
        """Exit code (None if still running at the timeout) and seconds since SIGTERM."""
        assert self.signalled_at is not None
        while time.monotonic() - self.signalled_at < timeout_s:
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        return self.process.poll(), time.monotonic() - self.signalled_at

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


async def wait_for_stable_group(replicas: list[Replica], timeout_s: float) -> dict[str, set[int]]:
    """Until every replica is ready and together they own each partition exactly once."""
    deadline = time.monotonic() + timeout_s
    owned: dict[str, set[int] | None] = {}
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            for replica in replicas:
                assert replica.process.poll() is None, f"{replica.name} exited: {replica.log_path}"
                owned[replica.name] = await replica.owned_partitions(http)
            parts = [p for p in owned.values() if p is not None]
            if (len(parts) == len(replicas) and all(parts)
                    and sorted(p for ps in parts for p in ps) == list(range(PARTITIONS))):
                return {name: p for name, p in owned.items() if p is not None}
            await asyncio.sleep(0.2)
    raise AssertionError(f"the group did not settle: {owned}")


def pairs_of(events: list[dict[str, Any]], env: dict[str, str],
             monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    return expected_pairs(events, settings_from(env, monkeypatch))


async def produce_steadily(bootstrap: str, topic: str, events: list[dict[str, Any]],
                           rate_per_s: float) -> None:
    """Upstream's steady stream, with librdkafka; the event loop keeps serving the simulators."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "partitioner": "consistent_random", "linger.ms": 5})
    failed: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failed.append(error)

    began = time.monotonic()
    for n, event in enumerate(events):
        await asyncio.sleep(max(0.0, began + n / rate_per_s - time.monotonic()))
        key, value = encode(event)
        producer.produce(topic, value, key=key, on_delivery=delivered)
        producer.poll(0)
    assert await asyncio.to_thread(producer.flush, 30) == 0
    assert not failed, failed


async def records_in(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        await consumer.stop()


async def uncommitted(bootstrap: str, topic: str, group_id: str) -> dict[int, int]:
    """Per partition, records of `topic` past the group's committed offset (its lag)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: ends[tp] - (await consumer.committed(tp) or 0) for tp in tps}
    finally:
        await consumer.stop()


@pytest.mark.parametrize("successor", [False, True], ids=["scale-down", "rolling-update"])
async def test_sigterm_under_load_hands_over_without_loss_or_duplicates(
        broker, topics, tmp_path, monkeypatch, successor):
    needs(broker, "evicts_dead_members")  # a group that rebalances as members come and go
    began = time.monotonic()
    # Latency keeps calls in flight (Reevoo's are the slowest, and the one vendor that
    # cannot be asked before a create); print files keep Zakeke pairs polling for seconds.
    zakeke = SimulatorServer(ZakekeSimulator(
        print_files_delay_s=2.0, print_files_jitter_s=1.0, seed=31, **world.zakeke_options(),
        knobs=FaultKnobs(latency_s=0.3, latency_jitter_s=0.5, seed=31)))
    smake = SimulatorServer(SmakeSimulator(
        seconds_per_state=0.3, seed=32, **world.smake_options(),
        knobs=FaultKnobs(latency_s=0.3, latency_jitter_s=0.5, seed=32)))
    reevoo = SimulatorServer(ReevooSimulator(
        seed=33, knobs=FaultKnobs(latency_s=0.5, latency_jitter_s=2.0, seed=33)))
    servers = (zakeke, smake, reevoo)
    for server in servers:
        await server.start()
    env = {**service_env(broker, topics, zakeke=zakeke.base_url, smake=smake.base_url,
                         reevoo=reevoo.base_url),
           "ORDERFLOW_SHUTDOWN_GRACE_S": str(GRACE_S)}
    events = sample_orders(ORDERS, seed=30, prefix="TERM", shape="mixed")
    pairs = pairs_of(events, env, monkeypatch)
    reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
    await reader.start()
    # One replica first, then two more, as a deployment grows: the group is past its first
    # generation, so a replica that stops leaves it at once (the embedded broker numbers the
    # first generation 0, from which aiokafka sends no LeaveGroup; the others would wait for
    # its session to time out instead).
    replicas = [Replica("a", env, tmp_path / "a.log")]
    try:
        await wait_for_stable_group(replicas, timeout_s=20)
        replicas += [Replica(name, env, tmp_path / f"{name}.log") for name in ("b", "c")]
        owners = await wait_for_stable_group(replicas, timeout_s=30)
        # The one owning most partitions hands back the most.
        leaving = max(replicas, key=lambda r: (len(owners[r.name]), r.name))
        others = [r for r in replicas if r is not leaving]

        producing = asyncio.create_task(produce_steadily(
            broker.bootstrap_servers, topics.orders_created, events, RATE_PER_S))
        await asyncio.sleep(SIGTERM_AFTER_S)
        # Where each replica's log stands before the step: what is assigned after it is counted.
        marks = {r.name: r.log_size() for r in others}
        if successor:
            seen = leaving.log_size()
            replicas.append(Replica("d", env, tmp_path / "d.log"))
            others.append(replicas[-1])
            # SIGTERM once the old replica has seen the rebalance its successor started (aiokafka
            # logs this), so it stops in the middle of it. (Leaving before it has seen it is no
            # test of orderflow: it would only meet an embedded-broker quirk, which then holds
            # the others' join for about the rebalance timeout.)
            await leaving.wait_for_line("because it is rebalancing", since=seen, timeout_s=15)
        assert not producing.done(), "the load must still be running at SIGTERM"
        leaving.terminate()
        code, shutdown_s = await leaving.wait_exit(GRACE_S + LEAVE_MARGIN_S)
        assert code == 0, (f"SIGTERM must end the replica with exit code 0 within "
                           f"{GRACE_S + LEAVE_MARGIN_S}s, got {code}: {leaving.log_path}")
        # The others own every partition between them, and finish every pair.
        await wait_for_stable_group(others, timeout_s=30)
        # The step moved the leaving replica's partitions and nothing else: the others kept
        # theirs (the assignment is sticky), whatever generations the group went through.
        moved = {r.name: r.partitions_taken(owners.get(r.name, set()), marks.get(r.name, 0))
                 for r in others}
        assert sorted(p for taken in moved.values() for p in taken) == sorted(owners[leaving.name]), (
            f"partitions moved to the others: {moved}, the leaving replica held "
            f"{sorted(owners[leaving.name])}")
        assert leaving.signalled_at is not None
        taken_over_s = time.monotonic() - leaving.signalled_at - shutdown_s
        await producing
        finished = await reader.wait_for(pairs, timeout_s=max(10.0, 50 - (time.monotonic() - began)))
        missing = pairs - reader.outcomes.finished_pairs()
        assert finished, f"{len(missing)} pairs never ended, e.g. {sorted(missing)[:5]}"

        for replica in others:
            replica.terminate()
        others_exits = [(r.name, *(await r.wait_exit(GRACE_S + LEAVE_MARGIN_S))) for r in others]
        print(f"\n[{'rolling-update' if successor else 'scale-down'}] replica {leaving.name} "
              f"(partitions {sorted(owners[leaving.name])}) exited {code} {shutdown_s:.2f}s after "
              f"SIGTERM; the others owned every partition {taken_over_s:.2f}s later, "
              f"{sum(map(len, moved.values()))} partitions moved; they exited "
              + ", ".join(f"{name}: {c} after {s:.2f}s" for name, c, s in others_exits))
        assert [c for _, c, _ in others_exits] == [0] * len(others), others_exits
    finally:
        for replica in replicas:
            replica.kill()
        await reader.stop()
        for server in servers:
            await server.stop()

    # The stopped replica's log: it stopped with calls in flight, let them finish within the
    # grace period (none cancelled at hand-over) and got to the end of its shutdown.
    stopping = leaving.logged("orderflow stopping")
    assert len(stopping) == 1 and stopping[0]["grace_s"] == GRACE_S, stopping
    assert stopping[0]["in_flight"] > 0, "no vendor call was in flight at SIGTERM: nothing was proved"
    assert not leaving.logged("cancelled calls still running at hand-over")
    assert leaving.logged("orderflow stopped")
    for replica in replicas:
        assert not replica.error_lines(), (replica.name, replica.error_lines()[:5])

    outcomes = reader.outcomes
    assert outcomes.pairs_with_several_terminals() == set()
    assert set(outcomes.terminal_status) == pairs, "a pair no order needed got a status"
    assert {outcomes.terminal_status[p] for p in pairs} == {"completed"}
    # Each design line's print files announced once (configurator lines have none); and since
    # the calls in flight were finished and recorded, not cancelled, the others repeated no
    # step: no event came twice.
    design_lines = {(e["order"]["order_id"], line["line_id"]) for e in events
                    for line in e["order"]["lines"]
                    if (line.get("customization") or {}).get("design_id")}
    assert dict(outcomes.print_files) == dict.fromkeys(design_lines, 1)
    assert outcomes.repeated_events() == 0
    for server in servers:
        vendor, ledger = server.state.vendor, server.state.ledger
        assert ledger.duplicates() == {}, f"orders created twice at {vendor}"
        assert ledger.total_created == sum(1 for _, v in pairs if v == vendor), vendor
    assert await records_in(broker.bootstrap_servers, topics.dead_letter) == 0
    # Every input record was committed by the group: the stopped replica's last batches too.
    lag = await uncommitted(broker.bootstrap_servers, topics.orders_created,
                            env["ORDERFLOW_KAFKA__GROUP_ID"])
    assert lag == dict.fromkeys(range(PARTITIONS), 0), lag
    print(f"wall time {time.monotonic() - began:.1f}s, {len(pairs)} pairs")
