"""Each replica's word about itself on the control topic (`replica/<id>`, contracts/
control.py), for `orderflow status`: the input partitions it owns and which of them are
restored, and per vendor its pairs waiting, overdue and running. Written every
REPORT_EVERY_S and when the partitions change hands, removed (a tombstone) when the replica
stops; one left by a replica that died is removed by the sweeper once stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from orderflow.consumer.logging import get_logger, orderflow_version
from orderflow.consumer.partitions import PartitionOwner
from orderflow.contracts import control
from orderflow.contracts.events import Vendor

log = get_logger(__name__)

REPORT_EVERY_S = 30.0
# A replica's word older than this is no longer its word (it died without removing it).
STALE_AFTER_S = 4 * REPORT_EVERY_S

VendorCounts = Callable[[float], dict[Vendor, control.VendorWork]]


def replica_id() -> str:
    """The pod's name (the host name in Kubernetes) and the process: unique in the fleet."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ReplicaReporter:
    """Writes this replica's `ReplicaStatus` now and then, and removes it on the way out."""

    def __init__(self, topic: str, owner: PartitionOwner, counts: VendorCounts,
                 producer: AIOKafkaProducer, *, clock: Callable[[], float] = time.time,
                 every_s: float = REPORT_EVERY_S) -> None:
        self._topic = topic
        self._owner = owner
        self._counts = counts
        self._producer = producer
        self._clock = clock
        self.every_s = every_s
        self.replica = replica_id()
        self._task: asyncio.Task[None] | None = None

    def status(self) -> control.ReplicaStatus:
        now = self._clock()
        return control.ReplicaStatus(
            at=now, replica=self.replica, host=socket.gethostname(), version=orderflow_version(),
            partitions=sorted(self._owner.owned()), restored=sorted(self._owner.restored()),
            vendors=self._counts(now))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._report_forever(), name="replica-status")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(KafkaError, asyncio.TimeoutError):
            await asyncio.wait_for(self._producer.send_and_wait(
                self._topic, None, key=control.replica_key(self.replica)), 5.0)

    async def _report_forever(self) -> None:
        seen: tuple[list[int], list[int]] | None = None
        last = 0.0
        while True:
            owned, restored = sorted(self._owner.owned()), sorted(self._owner.restored())
            if (owned, restored) != seen or self._clock() - last >= self.every_s:
                try:
                    status = self.status()
                    await self._producer.send_and_wait(
                        self._topic, status.model_dump_json().encode(), key=status.key())
                    seen, last = (owned, restored), self._clock()
                except KafkaError as exc:  # a word about ourselves is worth no crash
                    log.info("replica status not written this time", error=str(exc))
            await asyncio.sleep(1.0)
