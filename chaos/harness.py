"""The chaos harness: real processes, real faults, then a count of what was lost or repeated.

    python -m chaos [--orders 10000] [...]          (or: make chaos; --short for the CI size)

It starts the test broker (`--broker`, else TEST_BROKER: the embedded one by default,
orderflow/sandbox/broker.py), the three vendor simulators (one process) and up to
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
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka.errors import KafkaError

from chaos.flows import flow_figures
from chaos.load import MAX_RECORD_BYTES, Producer, Stream, build_stream
from chaos.plan import ChaosPlan, ChaosReport
from chaos.replicas import Replicas
from chaos.verdict import Observed, failures, figures
from orderflow.config.settings import Settings, TopicSettings
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics
from orderflow.sandbox.outcomes import OutputReader, expected_pairs, read_topic
from orderflow.sandbox.processes import Child, sandbox_env, start_simulators, wait_ready
from orderflow.sandbox.simulators.defaults import VENDORS

WEBHOOK_TOKEN = "chaos-webhook-token"

Say = Callable[[str], None]


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
        self.pause_exits: list[int | None] = []

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

    async def stall_broker(self, broker: SandboxBroker) -> None:
        if not broker.abilities.can_freeze:
            self.note(f"broker stalls skipped: the {broker.abilities.name} broker is not a "
                      f"process of this machine")
            return
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

    async def pause_smake(self, env: dict[str, str]) -> None:
        """An operator's pause of Smake during the run, and the resume: the commands as
        processes, through the control topic. Nothing may be lost for it."""
        await self.at(0.55)
        for command in ("pause", "resume"):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "orderflow", command, "smake",
                env={k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")} | env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await process.communicate()
            self.pause_exits.append(process.returncode)
            self.note(f"orderflow {command} smake: exit {process.returncode}: "
                      f"{out.decode(errors='replace').strip()[:100]}")
            if command == "pause":
                await asyncio.sleep(self.plan.pause_s)
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
        broker = chosen_broker(log_path=plan.work_dir / "broker.log",
                               choice=plan.broker or None).start()
        report.figures["broker"] = broker.abilities.name
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
                "--smake-second-parcel-rate", "0.2",
            ], sim_log)
            env = sandbox_env(broker.bootstrap_servers, topics, urls, abilities=broker.abilities)
            env.update({
                "ORDERFLOW_TOPICS__CONTROL": "chaos.orderflow.control",
                "ORDERFLOW_SMAKE__WEBHOOK_TOKEN": WEBHOOK_TOKEN,
                # One order, one flow, under the faults: mixed orders' artwork goes from
                # Zakeke to Smake, and reviews wait for the production.
                "ORDERFLOW_REEVOO__SUBMIT_ON": "fulfilled",
                "PYTHONUNBUFFERED": "1",  # a SIGKILLed replica's last log lines are kept
                "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "0.5",
                "ORDERFLOW_POLL__MAX_INTERVAL_S": "2",
                # Smake's tracking numbers come a few seconds after completion (world.py).
                "ORDERFLOW_POLL__TRACKING_INTERVAL_S": "2",
                "ORDERFLOW_SHUTDOWN_GRACE_S": str(plan.shutdown_grace_s),
                "ORDERFLOW_KAFKA__MAX_RECORD_BYTES": str(MAX_RECORD_BYTES),
                **{f"ORDERFLOW_{v.upper()}__REQUEST_TIMEOUT_S": str(plan.request_timeout_s) for v in VENDORS},
                # For the whole cluster (each replica takes its share by partitions owned):
                # 48 is the 16 a replica had on its own, times the 3 replicas.
                **{f"ORDERFLOW_{v.upper()}__MAX_CONCURRENCY": "48" for v in VENDORS},
            })
            replicas = Replicas(env, plan.replicas, plan.work_dir, plan.shutdown_grace_s,
                                static_membership=bool(plan.static_membership))
            async with aiohttp.ClientSession() as session:
                for vendor in ("zakeke", "smake"):
                    async with session.post(f"{urls[vendor]}/_sim/faults", json={
                            "fail_after_effect_rate": plan.fail_after_effect_rate}) as answer:
                        answer.raise_for_status()
                # Smake's webhooks go to replica 0, which is killed now and then like any: a
                # delivery it cannot take is delivered again.
                async with session.post(f"{urls['smake']}/_sim/webhooks", json={
                        "url": f"http://127.0.0.1:{replicas.ports[0]}/webhooks/smake",
                        "token": WEBHOOK_TOKEN, "forged_rate": plan.webhook_forged_rate,
                        "repeat_rate": plan.webhook_repeat_rate, "max_delay_s": 1.0,
                        "retry_s": 2.0, "max_attempts": 10}) as answer:
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

    async def _drive(self, report: ChaosReport, stream: Stream, broker: SandboxBroker,
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
        self.note(f"producing {plan.orders} orders at {plan.rate:.0f}/s with {plan.poison} poison records, "
                  f"{plan.redeliveries} re-deliveries and {plan.cancellations} cancellations; "
                  f"1 replica of {plan.replicas}")
        try:
            await asyncio.gather(
                asyncio.to_thread(producer.run),
                self.scale(replicas, session),
                self.kill_replicas(replicas),
                self.stall_broker(broker),
                self.freeze_replicas(replicas),
                self.vendor_faults(session, urls),
                self.pause_smake(replicas.env),
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
        flows = {}
        for vendor, url in urls.items():
            async with session.get(f"{url}/_sim/flows") as answer:
                flows[vendor] = await answer.json()
            flows[vendor]["created_keys"] = list(ledgers[vendor]["created"])
        report.figures.update(flow_figures(stream.events, flows, reader.outcomes,
                                           cancelled=stream.cancelled))
        async with session.get(f"{urls['smake']}/_sim/webhooks") as answer:
            report.figures["smake_webhooks"] = await answer.json()
        report.figures["pause_command_exits"] = self.pause_exits
        observed = Observed(plan, stream, producer, replicas, reader.outcomes, want, drained_at,
                            dead_letters, ledgers, self.began_wall, self.last_fault_end,
                            self.stalls, self.freezes)
        report.figures.update(figures(observed))
        report.failures.extend(failures(report.figures, observed))

    # ---- the counts


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
