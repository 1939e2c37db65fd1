"""`orderflow sandbox` (`make sandbox`): a place to practise on-call. The embedded broker, the
three vendor simulators and one replica of the service stay up until Ctrl-C, with a few
orders in every state an operator meets: done, in production, cancelled, a dead letter, a
rejection, and Smake paused with a note. It prints the environment to source in another
shell and the commands to try there; nothing it starts outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from rich.console import Console

from orderflow.config.settings import TopicSettings
from orderflow.consumer.app import Application
from orderflow.consumer.logging import configure_logging
from orderflow.contracts import control
from orderflow.contracts.events import Vendor
from orderflow.sandbox.broker import EmbeddedBroker, create_topics, free_port
from orderflow.sandbox.demo import INPUT_PARTITIONS, sandbox_settings
from orderflow.sandbox.processes import sandbox_env
from orderflow.sandbox.samples import encode, sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

ENV_FILE = Path("sandbox.env")


def practice_orders(seed: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Orders for every state to look at, and what each one is for."""
    events = sample_orders(11, seed=seed, prefix="PRACTICE")
    # One Smake order whose shipping address is missing: Smake's pair ends `rejected`.
    [rejected] = sample_orders(1, seed=seed, prefix="PRACTICE-REJECTED", shape="smake")
    rejected["order"].pop("shipping_address", None)
    notes = {rejected["order"]["order_id"]: "rejected at Smake: no shipping address"}
    return [rejected, *events], notes


async def _publish(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def _commands(order_ids: list[str], cancelled: str, rejected: str) -> list[tuple[str, str]]:
    return [
        ("orderflow status", "the fleet: this replica, its partitions, the vendors' pairs, the pause"),
        (f"orderflow inspect {order_ids[0]}", "one order: each pair and its events"),
        (f"orderflow inspect {rejected}", "a rejected pair and why"),
        ("orderflow resume smake", "let Smake's waiting pairs go (it is paused, with a note)"),
        (f"orderflow retry {rejected} --vendor smake", "after the cause is fixed (it is not: see"
                                                       " what it says)"),
        (f"orderflow cancel {order_ids[1]} --reason 'customer asked'", "cancel an order"),
        (f"orderflow inspect {cancelled}", "an order cancelled before it was sent"),
        ("orderflow dlq list", "the dead letters, and `dlq show 0:0`"),
        ("orderflow check", "settings, brokers, topics and each vendor's credentials"),
        ("curl -s $METRICS | grep orderflow_vendor_orders", "the metrics Grafana reads"),
    ]


async def run_sandbox(*, seed: int = 7, http_port: int = 0) -> int:
    console = Console()
    http_port = http_port or free_port()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with EmbeddedBroker() as broker:
        topics = TopicSettings()
        await create_topics(broker.bootstrap_servers, [
            (topics.orders_created, INPUT_PARTITIONS, None), (topics.status, 3, None),
            (topics.print_files_ready, 3, None), (topics.dead_letter, 1, None)])
        zakeke = SimulatorServer(ZakekeSimulator(print_files_delay_s=5.0, **world.zakeke_options()))
        # Productions that take a while: there is time to look at one in progress.
        smake = SimulatorServer(SmakeSimulator(seconds_per_state=30.0, seed=seed,
                                               **world.smake_options()))
        reevoo = SimulatorServer(ReevooSimulator())
        async with zakeke, smake, reevoo:
            urls = {"zakeke": zakeke.base_url, "smake": smake.base_url, "reevoo": reevoo.base_url}
            settings = sandbox_settings(broker.bootstrap_servers, urls, http_port)
            configure_logging(settings.log)
            env = sandbox_env(broker.bootstrap_servers, topics, urls, http_port=http_port,
                              group_id="orderflow-demo")
            events, notes = practice_orders(seed)
            order_ids = [e["order"]["order_id"] for e in events[1:]]
            rejected = next(iter(notes))
            cancelled_first = order_ids[-1]
            app = Application(settings)
            await app.start()
            try:
                cancel = {"event_id": "practice-cancel-1", "event_type": "order.cancelled",
                          "schema_version": 1, "occurred_at": events[-1]["occurred_at"],
                          "order_id": cancelled_first, "reason": "customer changed their mind"}
                await _publish(broker.bootstrap_servers, topics.orders_created, [
                    (cancelled_first.encode(), json.dumps(cancel).encode()),
                    *[encode(e) for e in events],
                    (b"PRACTICE-BAD-1", b'{"event_type": "order.created", "order": {'),
                    (b"PRACTICE-BAD-2", json.dumps({"event_id": "x", "event_type": "order.created",
                                                    "schema_version": 1}).encode()),
                ])
                await asyncio.sleep(8)  # the first pairs go through before the pause
                # Smake paused with a note, as an operator during its maintenance would.
                pause = control.Pause(at=time.time(), vendor=Vendor.SMAKE, paused=True,
                                      note="practice: Smake maintenance window")
                await _publish(broker.bootstrap_servers, settings.topics.control,
                               [(pause.key(), pause.model_dump_json().encode())])
                port = app.ops.port or http_port
                _write_env(env, port)
                _show(console, order_ids, cancelled_first, rejected, port)
                await stop.wait()
            finally:
                console.print("stopping the sandbox...")
                await app.stop()
                with contextlib.suppress(OSError):
                    ENV_FILE.unlink()  # noqa: ASYNC240 (a small local file, once)
    return 0


def _write_env(env: dict[str, str], port: int) -> None:
    """The settings the operator commands need, to `source` in another shell."""
    ENV_FILE.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
                        + f"export METRICS=http://127.0.0.1:{port}/metrics\n")


def _show(console: Console, order_ids: list[str], cancelled: str, rejected: str,
          port: int) -> None:
    console.print()
    console.print("[bold green]the sandbox is up[/]: broker, Zakeke, Smake and Reevoo "
                  "simulators, and one replica of orderflow")
    console.print(f"metrics http://127.0.0.1:{port}/metrics, health /healthz, readiness /readyz")
    console.print(f"In another shell, from this directory: [bold]source {ENV_FILE}[/] "
                  "(and the virtualenv: source .venv/bin/activate), then try:")
    for command, why in _commands(order_ids, cancelled, rejected):
        console.print(f"  [bold]{command}[/]\n      {why}")
    console.print("Ctrl-C here stops everything.")
