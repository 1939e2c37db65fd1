"""The scheduler's housekeeping, once a second: proves that side of the replica turns (for
/healthz), refreshes the gauges of waiting jobs and held-back vendors, and forgets finished
pairs once a re-delivered input could no longer need them (their tombstones keep the
tracking topic bounded)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka.errors import KafkaError

from orderflow.config.settings import Settings
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.logging import get_logger
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner
from orderflow.contracts.events import Vendor

log = get_logger(__name__)

# Counting a million waiting jobs takes a while: the backlog gauge is refreshed this often.
WAITING_EVERY_S = 15.0


class Housekeeping:
    """The scheduler's turn of the clock: gauges, and forgetting old finished pairs."""

    def __init__(self, settings: Settings, owner: PartitionOwner, journal: JobJournal,
                 metrics: Metrics, held_back: Callable[[float], dict[Vendor, dict[str, bool]]],
                 *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._owner = owner
        self._table = owner.table
        self._journal = journal
        self._metrics = metrics
        self._held_back = held_back
        self._clock = clock
        self.last_turn = clock()

    async def run(self) -> None:
        retention = self._settings.tracking.terminal_retention_s
        last_sweep = last_count = 0.0
        while True:
            now = self._clock()
            self.last_turn = now
            self._metrics.last_progress.set(now)
            held = self._held_back(now)
            if now - last_count >= WAITING_EVERY_S:
                last_count = now
                waiting = self._table.active_counts()
                for vendor in held:
                    self._metrics.jobs_waiting.labels(str(vendor)).set(waiting.get(vendor, 0))
            for vendor, reasons in held.items():
                for reason, on in reasons.items():
                    self._metrics.vendor_paused.labels(str(vendor), reason).set(1 if on else 0)
            if now - last_sweep >= min(60.0, retention / 10):
                last_sweep = now
                await self._sweep_finished(now - retention)
            await asyncio.sleep(1.0)

    async def _sweep_finished(self, older_than: float) -> None:
        for partition in self._owner.open_partitions():
            expired = self._table.expired_finished(partition, older_than)
            if not expired:
                continue
            try:
                await self._journal.forget(partition, expired)
            except KafkaError as exc:
                log.warning("could not remove finished pairs, will try again", error=str(exc))
                continue
            log.info("forgot finished pairs", partition=partition, count=len(expired))
