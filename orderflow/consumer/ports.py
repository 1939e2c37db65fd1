"""What the scheduler and its helpers need from the Kafka side, as ports: the Publisher and
the TrackingStore stand behind them in the service, fakes in unit tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from orderflow.consumer import transitions
from orderflow.consumer.jobs import Job, JobKey


class EventSink(Protocol):
    """Where the scheduler's output events go (the Publisher)."""

    async def publish(self, events: Sequence[transitions.OutputEvent]) -> None: ...


class JobStore(Protocol):
    """Where the scheduler records jobs' states (the TrackingStore)."""

    async def write(self, job: Job) -> None: ...

    async def remove(self, partition: int, keys: Iterable[JobKey]) -> None: ...
