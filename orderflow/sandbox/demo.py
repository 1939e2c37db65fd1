"""`orderflow demo`: the whole system on this machine.

The embedded broker, the three vendor simulators (with a little latency and the odd Smake
failure, as in life), the service itself, and a few hundred sample orders of every shape.
A live table shows each vendor's pairs moving; the summary says what happened and where the
metrics were served. Exit code 0 when every (order, vendor) pair reached a terminal status.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

from aiokafka import AIOKafkaProducer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orderflow.config.settings import Settings, TopicSettings, load_settings, overrides_from
from orderflow.consumer.app import Application
from orderflow.consumer.logging import configure_logging
from orderflow.contracts import control
from orderflow.contracts.events import Vendor
from orderflow.sandbox.broker import EmbeddedBroker, create_topics, free_port
from orderflow.sandbox.outcomes import TERMINAL, OutputReader, Pair, expected_pairs, read_topic
from orderflow.sandbox.processes import sandbox_env
from orderflow.sandbox.samples import encode, sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import FaultKnobs, SimulatorServer
from orderflow.sandbox.simulators.defaults import VENDORS
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

INPUT_PARTITIONS = 6


def sandbox_settings(bootstrap: str, urls: dict[str, str], http_port: int) -> Settings:
    """The service's settings for the sandbox: the environment every sandbox service gets
    (`sandbox_env`), with quick polling and quiet console logs for the demo's screen."""
    env = {
        **sandbox_env(bootstrap, TopicSettings(), urls, http_port=http_port,
                      group_id="orderflow-demo"),
        "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "0.5",
        "ORDERFLOW_POLL__MAX_INTERVAL_S": "2",
        "ORDERFLOW_POLL__DEADLINE_S": "600",
        "ORDERFLOW_LOG__FORMAT": "console",
        "ORDERFLOW_LOG__LEVEL": "WARNING",
        "ORDERFLOW_SHUTDOWN_GRACE_S": "5",
    }
    return load_settings(env, **overrides_from(env))


def _progress_table(expected: dict[str, set[Pair]], reader: OutputReader) -> Table:
    outcomes = reader.outcomes
    table = Table(title="orderflow demo: (order, vendor) pairs", expand=False)
    table.add_column("vendor")
    table.add_column("pairs", justify="right")
    for status in ("submitted", "in_progress", *sorted(TERMINAL)):
        table.add_column(status, justify="right")
    for vendor in VENDORS:
        pairs = expected[vendor]
        latest: Counter[str] = Counter()
        for pair in pairs:
            seen = outcomes.statuses.get(pair)
            if seen:
                latest[outcomes.terminal_status.get(pair, seen[-1])] += 1
        table.add_row(vendor, str(len(pairs)), *(str(latest[s]) for s in
                                                  ("submitted", "in_progress", *sorted(TERMINAL))))
    return table


async def run_demo(*, orders: int = 300, timeout_s: float = 180.0, seed: int = 7,
                   http_port: int = 0) -> int:
    console = Console()
    started = time.monotonic()
    os.environ.pop("ORDERFLOW_LOG__FORMAT", None)
    http_port = http_port or free_port()
    with EmbeddedBroker() as broker:
        console.print(f"[bold]embedded broker[/] on {broker.bootstrap_servers}")
        topics = TopicSettings()
        await create_topics(broker.bootstrap_servers, [
            (topics.orders_created, INPUT_PARTITIONS, None), (topics.status, 3, None),
            (topics.print_files_ready, 3, None), (topics.dead_letter, 1, None)])
        # The vendors as they really are (world.py), which the service's settings fit.
        zakeke = SimulatorServer(ZakekeSimulator(print_files_delay_s=3.0, print_files_jitter_s=3.0,
                                                 knobs=_lifelike_latency(seed),
                                                 **world.zakeke_options()))
        smake = SimulatorServer(SmakeSimulator(seconds_per_state=1.0, failure_rate=0.05, seed=seed,
                                               knobs=_lifelike_latency(seed),
                                               **world.smake_options()))
        reevoo = SimulatorServer(ReevooSimulator(knobs=_lifelike_latency(seed)))
        async with zakeke, smake, reevoo:
            urls = {"zakeke": zakeke.base_url, "smake": smake.base_url, "reevoo": reevoo.base_url}
            for vendor, url in urls.items():
                console.print(f"[bold]{vendor} simulator[/] at {url}")
            settings = sandbox_settings(broker.bootstrap_servers, urls, http_port)
            configure_logging(settings.log)
            events = sample_orders(orders, seed=seed)
            # What an operator meets too: an order Smake must refuse (no shipping address).
            refused = next(e for e in events if any(
                (line.get("fulfilment") or {}).get("provider") == "smake"
                for line in e["order"]["lines"]))
            refused["order"].pop("shipping_address", None)
            expected = _expected_pairs(events, settings)
            app = Application(settings)
            reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
            await app.start()
            await reader.start()
            metrics_url = f"http://127.0.0.1:{app.ops.port}/metrics"
            console.print(f"[bold]orderflow[/] running; metrics at {metrics_url}")
            cancels = _cancellations(events, seed)
            try:
                # Customers cancel some orders, at every moment: before the order comes (a
                # third of them on another partition), while it waits or is being sent,
                # while Smake produces, and after it ended.
                await _produce(broker.bootstrap_servers, topics.orders_created,
                               cancels["before"])
                await _produce(broker.bootstrap_servers, topics.orders_created,
                               [(*encode(event), None) for event in events] + _poison())
                await _produce(broker.bootstrap_servers, topics.orders_created,
                               cancels["waiting"])
                later = asyncio.get_running_loop().call_later(
                    4.0, lambda: asyncio.ensure_future(_produce(
                        broker.bootstrap_servers, topics.orders_created, cancels["producing"])))
                # Smake paused for a few seconds, as an operator would during its outage.
                pausing = asyncio.ensure_future(_pause_smake_for(
                    broker.bootstrap_servers, settings.topics.control, console, 2.0, 5.0))
                all_pairs = set().union(*expected.values())
                done = await _follow(console, reader, expected, all_pairs, timeout_s)
                later.cancel()
                await pausing
                if done:
                    await _produce(broker.bootstrap_servers, topics.orders_created,
                                   cancels["ended"])
                    await _until_refused(reader, cancels["ended"], 15.0)
            finally:
                await reader.stop()
                await app.stop()
            _summary(console, events, expected, reader, zakeke, smake, reevoo,
                     time.monotonic() - started, metrics_url, settings.smake.artwork_format)
            _cancellation_summary(console, cancels, reader, smake.state, zakeke.state,
                                  reevoo.state)
            letters = await read_topic(broker.bootstrap_servers, topics.dead_letter)
            console.print(f"dead letters: {len(letters)} (records no order could be read from; "
                          f"`orderflow dlq list` shows them with their reasons)")
    if not done:
        missing = len(all_pairs - reader.outcomes.finished_pairs())
        console.print(f"[bold red]{missing} pairs did not reach a terminal status within {timeout_s:.0f}s[/]")
        return 1
    console.print("[bold green]every order reached a terminal status at every vendor[/]")
    console.print("Next: [bold]make sandbox[/] keeps a broker, the simulators and a replica up "
                  "with orders in every state, and prints the operator commands to try on them "
                  "(status, inspect, retry, cancel, pause, dlq); docs/runbook.md says when to "
                  "use each.")
    return 0


def _lifelike_latency(seed: int) -> FaultKnobs:
    """20 to 50 ms per answer: enough to look like a vendor on the internet."""
    return FaultKnobs(latency_s=0.02, latency_jitter_s=0.03, seed=seed)


def _expected_pairs(events: list[dict[str, Any]], settings: Settings) -> dict[str, set[Pair]]:
    expected: dict[str, set[Pair]] = {v: set() for v in VENDORS}
    for pair in expected_pairs(events, settings):
        expected[pair[1]].add(pair)
    return expected


def _poison() -> list[InputRecord]:
    """Two records no order can be read from: they go to the dead-letter topic."""
    return [(b"DEMO-BAD-1", b'{"event_type": "order.created", "order": {', None),
            (b"DEMO-BAD-2", json.dumps({"event_id": "bad-2", "event_type": "order.created",
                                        "schema_version": 1}).encode(), None)]


async def _pause_smake_for(bootstrap: str, topic: str, console: Console, after_s: float,
                           for_s: float) -> None:
    """`orderflow pause smake`, then `resume`, as control records (what the commands write)."""
    await asyncio.sleep(after_s)
    for paused in (True, False):
        record = control.Pause(at=time.time(), vendor=Vendor.SMAKE, paused=paused,
                               note="demo: Smake maintenance" if paused else None)
        await _produce(bootstrap, topic, [(record.key(), record.model_dump_json().encode(), None)])
        console.print(f"[bold]orderflow {'pause' if paused else 'resume'} smake[/]")
        if paused:
            await asyncio.sleep(for_s)


# (key, value, partition): None for the producer's partitioner.
InputRecord = tuple[bytes, bytes, int | None]
CANCEL_MOMENTS = ("before", "waiting", "producing", "ended")


def _cancellations(events: list[dict[str, Any]], seed: int) -> dict[str, list[InputRecord]]:
    """One order in fifteen cancelled, at each moment in turn; a third of them published
    to another partition than their order's (another partitioner upstream)."""
    rng = random.Random(seed)
    chosen = rng.sample(events, max(len(CANCEL_MOMENTS), len(events) // 15))
    moments: dict[str, list[InputRecord]] = {moment: [] for moment in CANCEL_MOMENTS}
    for n, event in enumerate(chosen):
        order_id = event["order"]["order_id"]
        cancel = {"event_id": f"demo-cancel-{n}", "event_type": "order.cancelled",
                  "schema_version": 1, "occurred_at": event["occurred_at"],
                  "order_id": order_id, "reason": "the customer changed their mind"}
        partition = rng.randrange(INPUT_PARTITIONS) if n % 3 == 0 else None
        moments[CANCEL_MOMENTS[n % len(CANCEL_MOMENTS)]].append(
            (order_id.encode(), json.dumps(cancel).encode(), partition))
    return moments


async def _produce(bootstrap: str, topic: str, records: list[InputRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, partition=partition)
                   for key, value, partition in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _until_refused(reader: OutputReader, records: list[InputRecord],
                         timeout_s: float) -> None:
    """Orders cancelled after they ended: until each completed pair said it was refused."""
    orders = {key.decode() for key, _, _ in records}
    owed = {pair for pair, status in reader.outcomes.terminal_status.items()
            if pair[0] in orders and status == "completed"}
    deadline = time.monotonic() + timeout_s
    while not owed <= set(reader.outcomes.refusals) and time.monotonic() < deadline:
        await reader.poll(timeout_ms=250)


def _cancellation_summary(console: Console, cancels: dict[str, list[InputRecord]],
                          reader: OutputReader, smake: SmakeSimulator, zakeke: ZakekeSimulator,
                          reevoo: ReevooSimulator) -> None:
    outcomes = reader.outcomes
    before = [key.decode() for key, _, _ in cancels["before"]]
    sent_anyway = sum(1 for order_id in before for ledger in (
        zakeke.ledger, smake.ledger, reevoo.ledger) if ledger.created_count(order_id))
    cancelled_at_smake = sum(
        1 for moment in CANCEL_MOMENTS for key, _, _ in cancels[moment]
        for made in smake.orders_with_external_identifier(key.decode())
        if smake.state_of(made.id) == "cancelled")
    console.print(
        "cancellations: " + ", ".join(f"{len(cancels[m])} {m}" for m in CANCEL_MOMENTS)
        + f"; pairs cancelled: {sum(1 for s in outcomes.terminal_status.values() if s == 'cancelled')}"
        f"; Smake orders cancelled at Smake: {cancelled_at_smake}"
        f"; cancellations refused: {len(outcomes.refusals)}"
        f"; orders cancelled before they came that reached a vendor: {sent_anyway}")


async def _follow(console: Console, reader: OutputReader, expected: dict[str, set[Pair]],
                  all_pairs: set[Pair], timeout_s: float) -> bool:
    progress = Progress(TextColumn("pairs finished"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    task = progress.add_task("pairs", total=len(all_pairs))
    deadline = time.monotonic() + timeout_s
    with Live(Group(progress, _progress_table(expected, reader)), console=console,
              refresh_per_second=4) as live:
        while time.monotonic() < deadline:
            await reader.poll(timeout_ms=250)
            finished = len(all_pairs & reader.outcomes.finished_pairs())
            progress.update(task, completed=finished)
            live.update(Group(progress, _progress_table(expected, reader)))
            if finished == len(all_pairs):
                return True
    return False


def _artwork_handed(events: list[dict[str, Any]], zakeke: ZakekeSimulator,
                    smake: SmakeSimulator, file_format: str) -> tuple[int, int, int]:
    """How many lines designed at Zakeke and produced by Smake reached Smake with their
    design, how many of those with exactly Zakeke's file, and how many such lines there were."""
    handed = exact = lines = 0
    for event in events:
        order = event["order"]
        produced = [line for line in order["lines"] if "fulfilment" in line]
        for made in smake.orders_with_external_identifier(order["order_id"])[:1]:
            files = smake.production_files(made)
            for index, line in enumerate(produced):
                design = (line.get("customization") or {}).get("design_id")
                if not design or index not in files:
                    continue
                handed += 1
                name = f"{quote(design, safe='')}.{file_format.lower()}"
                wanted = zakeke.print_file_digest(name)
                exact += all((media.size, media.sha256) == wanted for media in files[index])
        lines += sum(1 for line in produced if (line.get("customization") or {}).get("design_id"))
    return handed, exact, lines


def _summary(console: Console, events: list[dict[str, Any]], expected: dict[str, set[Pair]],
             reader: OutputReader, zakeke: SimulatorServer[ZakekeSimulator],
             smake: SimulatorServer[SmakeSimulator], reevoo: SimulatorServer[ReevooSimulator],
             elapsed_s: float, metrics_url: str, artwork_format: str) -> None:
    outcomes = reader.outcomes
    table = Table(title="summary")
    table.add_column("vendor")
    table.add_column("pairs", justify="right")
    table.add_column("outcomes")
    table.add_column("orders created at vendor", justify="right")
    table.add_column("created twice", justify="right")
    ledgers = {"zakeke": zakeke.state.ledger, "smake": smake.state.ledger, "reevoo": reevoo.state.ledger}
    by_vendor = outcomes.by_vendor()
    for vendor in VENDORS:
        counts = ", ".join(f"{status} {n}" for status, n in sorted(by_vendor.get(vendor, {}).items()))
        ledger = ledgers[vendor]
        table.add_row(vendor, str(len(expected[vendor])), counts or "-", str(ledger.total_created),
                      str(len(ledger.duplicates())))
    console.print(table)
    handed, exact, lines = _artwork_handed(events, zakeke.state, smake.state, artwork_format)
    console.print(f"artwork handed to Smake: {handed} of {lines} lines designed at Zakeke and "
                  f"produced by Smake, {exact} of them byte for byte Zakeke's print-ready file")
    console.print(f"orders sent: {len(events)}; print-files events: {len(outcomes.print_files)}; "
                  f"status events: {sum(len(s) for s in outcomes.statuses.values())} "
                  f"({outcomes.repeated_events()} repeats); time: {elapsed_s:.1f}s")
    console.print(f"metrics were served at {metrics_url} (also /healthz and /readyz)")
