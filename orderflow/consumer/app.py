"""The service: wires the partition owner, the journal, intake, scheduler, control reader,
tracking store, publisher, adapters and the operations endpoints, and runs them until told
to stop."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable, Mapping

from orderflow.adapters.enabled import build_adapters
from orderflow.adapters.outcomes import VendorAdapter
from orderflow.config.settings import Settings, env_name
from orderflow.consumer.control import ControlReader
from orderflow.consumer.critical import CriticalTasks
from orderflow.consumer.fleet import ReplicaReporter
from orderflow.consumer.http import OpsServer
from orderflow.consumer.intake import Intake
from orderflow.consumer.jobs import JobTable
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.kafka import (
    StartupError,
    check_idempotence,
    make_producer,
    prepare_topics,
    wait_for_brokers,
)
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner
from orderflow.consumer.publisher import Publisher
from orderflow.consumer.scheduler import Scheduler
from orderflow.consumer.taskdump import dump_tasks
from orderflow.consumer.tracking import TrackingStore
from orderflow.consumer.webhooks import DeliveryLedger, SmakeWebhooks
from orderflow.contracts.events import Vendor

log = get_logger(__name__)


class Application:
    """The service: every part built once, wired, started in dependency order and stopped
    in reverse."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        adapters: Mapping[Vendor, VendorAdapter] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._adapters = dict(adapters) if adapters is not None else build_adapters(settings, self.metrics)
        self._clock = clock
        self.critical = CriticalTasks()
        self._producer = make_producer(settings.kafka)
        tracking = TrackingStore(settings.kafka, settings.topics.tracking, self._producer,
                                 self.metrics)
        # One owner of the partitions' lives and of what is kept per partition; one write
        # path for a job's state. Every part below is handed them.
        self.partitions = PartitionOwner(
            JobTable(), tracking, self.metrics, critical=self.critical,
            session_timeout_s=settings.kafka.session_timeout_ms / 1000)
        self.table = self.partitions.table
        journal = JobJournal(tracking, self.partitions)
        self._publisher = Publisher(self._producer, settings.topics, self.metrics)
        self.scheduler = Scheduler(settings, self._adapters, self.partitions, journal,
                                   self._publisher, self.metrics, clock=clock, rng=rng,
                                   critical=self.critical)
        # The cancellations every replica knows (the control topic's `cancel/` records): the
        # control reader fills it, the intake forwards new ones, the engine applies them.
        cancellations = self.scheduler.cancellations
        self.intake = Intake(settings, self.partitions, journal, self._producer, self.metrics,
                             clock=clock, critical=self.critical, cancellations=cancellations)
        # The deliveries noted on the control topic, by any replica: the reader fills it, the
        # webhook door asks it.
        deliveries = DeliveryLedger(clock)
        self.control = ControlReader(settings, self.scheduler, self.partitions, journal,
                                     self._producer, self.metrics, clock=clock,
                                     critical=self.critical, deliveries=deliveries,
                                     cancellations=cancellations)
        self.scheduler.fence_creates_with(self.control.caught_up)
        self.reporter = ReplicaReporter(settings.topics.control, self.partitions,
                                        self.scheduler.work_by_vendor, self._producer, clock=clock)
        for topic in (settings.topics.tracking, settings.topics.control):
            self.metrics.internal_records_skipped.labels(topic)
        self._webhooks: SmakeWebhooks | None = None
        smake = settings.smake
        if smake.enabled and smake.webhook_token is not None:
            self._webhooks = SmakeWebhooks(
                smake.webhook_token.get_secret_value(), self._producer, settings.topics.control,
                self.metrics, clock, max_body_bytes=smake.webhook_max_body_bytes,
                read_timeout_s=smake.webhook_read_timeout_s,
                max_concurrent=smake.webhook_max_concurrent, deliveries=deliveries)
        self.ops = OpsServer(settings.http.host, settings.http.port, self.metrics,
                             healthy=self.health, ready=self.readiness,
                             webhooks={"smake": self._webhooks.handle} if self._webhooks else None,
                             webhook_port=settings.http.webhook_port)
        self._started = False
        self._stop_stack = contextlib.AsyncExitStack()

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[bool, str]:
        if not self._started:
            return True, "starting"
        now = self._clock()
        stall = self.settings.health.stall_after_s
        problems = []
        if not self.intake.is_alive():
            problems.append("intake loop is not running")
        elif now - self.intake.last_turn > stall:
            problems.append(f"intake has not turned for {now - self.intake.last_turn:.0f}s")
        if not self.scheduler.is_alive():
            problems.append("scheduler is not running")
        elif now - self.scheduler.last_turn > stall:
            problems.append(f"scheduler has not turned for {now - self.scheduler.last_turn:.0f}s")
        return (not problems, "; ".join(problems) or "ok")

    def readiness(self) -> tuple[bool, str]:
        if not self._started or not self.intake.joined:
            return False, "not in the consumer group yet"
        missing = self.partitions.restoring()
        if missing:
            return False, f"restoring partitions {missing}"
        return True, f"ready, owning partitions {sorted(self.partitions.owned())}"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start everything, in dependency order. A start that fails (StartupError for what
        the settings or the cluster explain) stops what it had started first."""
        if self._started:
            return
        self._stop_stack = contextlib.AsyncExitStack()
        try:
            await self._start_all(self._stop_stack)
        except BaseException:
            await self._unwind()
            raise
        self._started = True
        log.info("orderflow started", vendors=sorted(str(v) for v in self._adapters),
                 input=self.settings.topics.orders_created, group=self.settings.kafka.group_id,
                 http_port=self.ops.port)

    async def _start_all(self, stack: contextlib.AsyncExitStack) -> None:
        # The producer exists from construction: closed even when never started, else the
        # client library reports it unclosed on the way out.
        stack.push_async_callback(self._producer.stop)
        # /healthz answers from the first moment: a replica waiting for its brokers is alive
        # (200) but not ready (503), and is not restarted for the brokers' absence.
        try:
            await self.ops.start()
        except OSError as exc:  # the port is taken, or the host is not this machine's
            http = self.settings.http
            ports = (f"{http.port} or {http.webhook_port}" if http.webhook_port is not None
                     else f"{http.port}")
            raise StartupError(
                f"cannot listen on {http.host}:{ports} ({env_name('http', 'host')}, "
                f"{env_name('http', 'port')}"
                + (f", {env_name('http', 'webhook_port')}" if http.webhook_port is not None else "")
                + f"): {exc.strerror or exc}") from None
        stack.push_async_callback(self.ops.stop)
        await wait_for_brokers(self.settings.kafka, self._broker_unreachable)
        await check_idempotence(self.settings.kafka)
        await prepare_topics(self.settings.kafka, self.settings.topics)
        for adapter in self._adapters.values():
            await adapter.start()
            stack.push_async_callback(adapter.stop)
        await self._producer.start()
        # The pauses in force are read before any vendor call can start.
        await self.control.start()
        stack.push_async_callback(self.control.stop)
        if self._webhooks is not None:
            self._webhooks.accepting = True
            stack.callback(setattr, self._webhooks, "accepting", False)
        await self.scheduler.start()
        stack.push_async_callback(self.scheduler.stop, self.settings.shutdown_grace_s)
        await self.intake.start()
        stack.push_async_callback(self.intake.stop)
        await self.reporter.start()
        stack.push_async_callback(self.reporter.stop)

    def _broker_unreachable(self, error: str, waited_s: float) -> None:
        log.warning("no broker answers yet, still trying", waited_s=round(waited_s, 1),
                    setting=env_name("kafka", "bootstrap_servers"),
                    bootstrap_servers=self.settings.kafka.bootstrap_servers, error=error,
                    gives_up_after_s=self.settings.kafka.startup_timeout_s)

    async def _unwind(self) -> None:
        """Stop what was started, last first; an error in one stop is logged, and the
        others still run."""
        stack, self._stop_stack = self._stop_stack, contextlib.AsyncExitStack()
        while True:
            try:
                await stack.aclose()
                return
            except Exception:
                log.exception("error while stopping a component")

    async def stop(self) -> None:
        """Stop taking work, finish or hand back what is in flight within the grace period,
        commit, leave the group, flush."""
        if not self._started:
            return
        self._started = False
        log.info("orderflow stopping", grace_s=self.settings.shutdown_grace_s,
                 in_flight=self.scheduler.in_flight_count())
        await self._unwind()
        log.info("orderflow stopped")

    async def run_until_signalled(self) -> int:
        """Run until SIGTERM or SIGINT (exit code 0) or until a critical task dies (1).
        A signal during start-up (waiting for brokers, say) stops at once."""
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, signalled.set)
        # A task dump for a loop that looks stuck, without stopping anything (taskdump.py).
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        starting = asyncio.create_task(self.start(), name="start")
        stop_wait = asyncio.create_task(signalled.wait(), name="signal")
        failed = asyncio.create_task(self.critical.wait_failed(), name="critical")
        try:
            await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return 0
            starting.result()  # a failed start raises here
            await asyncio.wait({stop_wait, failed}, return_when=asyncio.FIRST_COMPLETED)
            return 1 if failed.done() else 0
        finally:
            for task in (stop_wait, failed):
                task.cancel()
            await asyncio.gather(stop_wait, failed, return_exceptions=True)
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
