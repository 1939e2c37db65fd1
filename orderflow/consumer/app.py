"""The service: wires intake, scheduler, tracking store, publisher, adapters and the
operations endpoints, and runs them until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable, Mapping

from orderflow.adapters.base import RequestObserver, VendorAdapter
from orderflow.config.settings import Settings
from orderflow.consumer.http import OpsServer
from orderflow.consumer.intake import Intake
from orderflow.consumer.jobs import JobTable
from orderflow.consumer.kafka import make_producer, prepare_topics
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.publisher import Publisher
from orderflow.consumer.scheduler import Scheduler
from orderflow.consumer.tracking import TrackingStore
from orderflow.contracts.events import Vendor

log = get_logger(__name__)


def build_adapters(settings: Settings, observer: RequestObserver) -> dict[Vendor, VendorAdapter]:
    """One adapter per enabled vendor."""
    from orderflow.adapters.reevoo import ReevooAdapter
    from orderflow.adapters.smake import SmakeAdapter
    from orderflow.adapters.zakeke import ZakekeAdapter

    adapters: dict[Vendor, VendorAdapter] = {}
    if settings.zakeke.enabled:
        adapters[Vendor.ZAKEKE] = ZakekeAdapter(settings.zakeke, observer)
    if settings.smake.enabled:
        adapters[Vendor.SMAKE] = SmakeAdapter(settings.smake, observer)
    if settings.reevoo.enabled:
        adapters[Vendor.REEVOO] = ReevooAdapter(settings.reevoo, observer)
    return adapters


class Application:
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
        self.table = JobTable()
        self._producer = make_producer(settings.kafka)
        self._tracking = TrackingStore(settings.kafka, settings.topics.tracking, self._producer,
                                       self.metrics)
        self._publisher = Publisher(self._producer, settings.topics, self.metrics)
        self.scheduler = Scheduler(settings, self._adapters, self.table, self._publisher,
                                   self._tracking, self.metrics, clock=clock, rng=rng)
        self.intake = Intake(settings, self.table, self.scheduler, self._tracking, self._producer,
                             self.metrics, clock=clock)
        self.ops = OpsServer(settings.http.host, settings.http.port, self.metrics,
                             healthy=self.health, ready=self.readiness)
        self._started = False
        self._stopped = asyncio.Event()

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
        missing = sorted(self.intake.assigned - self.intake.restored)
        if missing:
            return False, f"restoring partitions {missing}"
        return True, f"ready, owning partitions {sorted(self.intake.assigned)}"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        await self.ops.start()
        await prepare_topics(self.settings.kafka, self.settings.topics)
        for adapter in self._adapters.values():
            await adapter.start()
        await self._producer.start()
        await self.scheduler.start()
        await self.intake.start()
        self._started = True
        log.info("orderflow started", vendors=sorted(str(v) for v in self._adapters),
                 input=self.settings.topics.orders_created, group=self.settings.kafka.group_id,
                 http_port=self.ops.port)

    async def stop(self) -> None:
        """Stop taking work, finish or hand back what is in flight within the grace period,
        commit, leave the group, flush."""
        if not self._started:
            return
        self._started = False
        grace = self.settings.shutdown_grace_s
        log.info("orderflow stopping", grace_s=grace, in_flight=self.scheduler.in_flight_count())
        await self.intake.stop()
        await self.scheduler.stop(grace)
        with contextlib.suppress(Exception):
            await self._producer.stop()
        for adapter in self._adapters.values():
            with contextlib.suppress(Exception):
                await adapter.stop()
        await self.ops.stop()
        self._stopped.set()
        log.info("orderflow stopped")

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
