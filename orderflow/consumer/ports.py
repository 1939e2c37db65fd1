"""What the engine needs from the Kafka side, as ports: the Publisher and the TrackingStore
stand behind them in the service, fakes in unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, Protocol

from orderflow.consumer import transitions
from orderflow.consumer.jobs import Job, JobKey
from orderflow.contracts.control import Cancel
from orderflow.contracts.events import Vendor


class EventSink(Protocol):
    """Where the runner's output events go (the Publisher)."""

    async def publish(self, events: Sequence[transitions.OutputEvent]) -> None: ...


class JobStore(Protocol):
    """Where the journal records jobs' states (the TrackingStore)."""

    async def write(self, job: Job) -> int:
        """Store the job's state; returns its offset once the brokers acknowledged it."""
        ...

    async def send(self, job: Job) -> asyncio.Future[Any]:
        """Hand the job's state to the producer; the future gives the record's metadata."""
        ...

    async def remove(self, partition: int, keys: Iterable[JobKey]) -> int | None:
        """Tombstones; returns the offset of the last one (None: there were no keys)."""
        ...


class HintResult(StrEnum):
    """What became of a webhook's hint (`orderflow_webhook_hints_total{result}`)."""

    POLLED_NOW = "polled_now"    # its poll is due now (or runs again when the running one ends)
    NOT_WAITING = "not_waiting"  # no poll to bring forward: still being created, or finished
    NOT_HERE = "not_here"        # another replica's pair, or none


class EngineCommands(Protocol):
    """What the control topic's records ask of the engine (the Scheduler)."""

    def follows(self, vendor: Vendor) -> bool:
        """Whether this replica calls the vendor at all (it is enabled)."""
        ...

    def pause(self, vendor: Vendor) -> bool: ...

    def resume(self, vendor: Vendor) -> bool: ...

    def look_now(self, vendor: Vendor, order_id: str | None,
                 vendor_order_ref: str | None) -> HintResult: ...

    async def cancel(self, cancel: Cancel) -> None:
        """Apply an order's cancellation to the pairs of it this replica owns."""
        ...
