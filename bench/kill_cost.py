"""What one SIGKILL costs the group: the time until every input partition is processed again.

    python -m bench.kill_cost [--brokers tansu,noida] [--repeat 3]    (or: make bench-kill)

For each broker and each membership (dynamic: the default; static: each replica a
`ORDERFLOW_KAFKA__GROUP_INSTANCE_ID` of its own, as a pod's name), `--replicas` processes of
`orderflow run` share a `--partitions` input topic, with the sandbox's session timeout
(6 s) and the rebalance timeout as the service sets it (shutdown grace + 30 s). Orders for
Reevoo only (a simulator answering at once) are produced at `--rate` a second, keyed so that
every partition gets its share. Once every partition is owned and orders flow, one replica
is SIGKILLed and started again `--restart-after-s` later, as the kubelet restarts a crashed
container in its pod (same pod name).

Measured per round: for each partition, from the kill to the terminal status of the first
order produced on it after the kill; the round's cost is the slowest partition's (a
partition the killed replica did not own recovers at once). Medians go to a table and to
`bench/results/kill-cost-latest.json`. Nothing here asserts a timing.

The other side of static membership is measured too (`scale-down` rows): a replica stopped
by SIGTERM and not started again (a scale-down, a rollout whose new pod has a new name).
A static member does not leave the group (KIP-345), so its partitions wait for its session
to expire; a dynamic one leaves and hands them over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from chaos.replicas import Replicas
from orderflow.config.settings import LogSettings
from orderflow.consumer.logging import configure_logging
from orderflow.operator.topics import producer_partition
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, prefixed_topics
from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.processes import sandbox_env, wait_ready
from orderflow.sandbox.samples import encode, sample_order_event
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator

RESULTS = Path(__file__).parent / "results"


async def owned_partitions(session: aiohttp.ClientSession, ports: list[int]) -> int:
    total = 0
    for port in ports:
        try:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as answer:
                for line in (await answer.text()).splitlines():
                    if line.startswith("orderflow_partitions_restored "):
                        total += int(float(line.split()[1]))
        except aiohttp.ClientError:
            pass
    return total


async def one_round(broker: SandboxBroker, reevoo_url: str, args: argparse.Namespace, static: bool,
                    kill: bool, n: int, work: Path) -> dict[str, Any]:
    topics = prefixed_topics(f"kill{n}-{time.monotonic_ns() % 10**9}")
    await create_topics(broker.bootstrap_servers, [
        (name, args.partitions, None) for name in (
            topics.orders_created, topics.status, topics.print_files_ready, topics.dead_letter)])
    env = sandbox_env(broker.bootstrap_servers, topics, {"reevoo": reevoo_url},
                      abilities=broker.abilities) | {"ORDERFLOW_SHUTDOWN_GRACE_S": "5"}
    replicas = Replicas(env, args.replicas, work, 5.0, static_membership=static)
    reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready,
                          fetch_max_wait_ms=50)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=0)
    produced: dict[str, tuple[int, float]] = {}  # order id -> (partition, produced at)
    finished: dict[str, float] = {}
    stop = asyncio.Event()
    rng = random.Random(n)

    async def produce_forever() -> None:
        index = 0
        while not stop.is_set():
            event = sample_order_event(index, rng, shape="plain", prefix=f"K{n}")
            key, value = encode(event)
            await producer.send(topics.orders_created, value, key=key)
            produced[event["order"]["order_id"]] = (producer_partition(key, args.partitions),
                                                    time.monotonic())
            index += 1
            await asyncio.sleep(1 / args.rate)

    async def read_forever() -> None:
        while not stop.is_set():
            await reader.poll(timeout_ms=50)
            now = time.monotonic()
            for (order_id, _), status in reader.outcomes.terminal_status.items():
                if status and order_id not in finished:
                    finished[order_id] = now

    try:
        async with aiohttp.ClientSession() as session:
            for slot in range(args.replicas):
                replicas.start(slot)
            for slot in range(args.replicas):
                await wait_ready(session, replicas.ports[slot], replicas.children[slot], 120)
            deadline = time.monotonic() + 120
            while await owned_partitions(session, replicas.ports) < args.partitions:
                if time.monotonic() > deadline:
                    raise RuntimeError("the group never owned every partition")
                await asyncio.sleep(0.5)
            await producer.start()
            await reader.start()
            tasks = [asyncio.create_task(produce_forever()), asyncio.create_task(read_forever())]
            await asyncio.sleep(args.steady_s)
            killed_at = time.monotonic()
            if kill:
                await replicas.kill(1)
                await asyncio.sleep(args.restart_after_s)
                replicas.start(1)
            else:
                await replicas.terminate(1)
            recovered: dict[int, float] = {}
            while len(recovered) < args.partitions and time.monotonic() - killed_at < args.give_up_s:
                await asyncio.sleep(0.2)
                for order_id, (partition, at) in list(produced.items()):
                    if at >= killed_at and partition not in recovered and order_id in finished:
                        recovered[partition] = finished[order_id] - killed_at
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        stop.set()
        await reader.stop()
        await producer.stop()
        for slot, child in replicas.children.items():
            if child.running:
                await replicas.terminate(slot)
        replicas.close_logs()
    slowest = max(recovered.values()) if len(recovered) == args.partitions else float("inf")
    return {"recovered_s": slowest, "per_partition_s": recovered}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging(LogSettings(level="CRITICAL"))
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="kill-cost-"))
    async with SimulatorServer(ReevooSimulator()) as reevoo:
        for name in args.brokers.split(","):
            with chosen_broker(log_path=work / f"{name}.log", choice=name) as broker:
                for label, static, kill in (("dynamic, SIGKILL", False, True),
                                            ("static, SIGKILL", True, True),
                                            ("dynamic, scale-down", False, False),
                                            ("static, scale-down", True, False)):
                    rounds = []
                    for n in range(args.repeat):
                        outcome = await one_round(broker, reevoo.base_url, args, static, kill,
                                                  n, work)
                        rounds.append(outcome["recovered_s"])
                        print(f"{name:<6} {label:<20} round {n + 1}: every partition processed "
                              f"again after {outcome['recovered_s']:.1f} s", flush=True)
                    results[f"{name} | {label}"] = {"median_s": statistics.median(rounds),
                                                    "rounds_s": rounds}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kill_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="tansu,noida")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--steady-s", type=float, default=5.0)
    parser.add_argument("--restart-after-s", type=float, default=1.0)
    parser.add_argument("--give-up-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kill-cost-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'broker | membership, fault':<36} {'median':>8}  rounds")
    for label, figures in results.items():
        rounds = ", ".join(f"{r:.1f}" for r in figures["rounds_s"])
        print(f"{label:<36} {figures['median_s']:>7.1f}s  {rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
