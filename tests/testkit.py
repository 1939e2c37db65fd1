"""What the tests share: the fixture files, one order builder, and typed fakes of the ports
the engine talks to (publisher, tracking store, the intake's input, a request observer).
The fakes are checked against the ports they stand in for by mypy (`make lint`).

`started_engine` wires the engine as `Application` does (partition owner, journal,
scheduler), with fakes in place of Kafka: unit tests drive real lanes, runner and partition
life without a broker.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python

from orderflow.adapters.outcomes import VendorAdapter
from orderflow.config.settings import Settings
from orderflow.consumer import transitions
from orderflow.consumer.jobs import Job, JobKey, JobTable
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import InputGate, PartitionOwner, TrackingReader
from orderflow.consumer.ports import EventSink, JobStore
from orderflow.consumer.tracking import RestoredPartition
from orderflow.contracts.events import Order, OrderCreated, Vendor

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_ORDER_CREATED = FIXTURES / "order-created.json"


@cache
def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def an_event(name: str = "order-created.json") -> dict[str, Any]:
    """A fixture file's event as JSON data (a fresh copy to change)."""
    data: dict[str, Any] = json.loads(_fixture(name))
    return data


def an_order(name: str = "order-created.json", **changes: Any) -> Order:
    """The order of a fixture file's `order.created` event, with `changes` to its fields
    (plain data or models), validated as upstream's JSON is, so a change the contract
    refuses fails here."""
    event = an_event(name)
    event["order"].update(to_jsonable_python(changes))
    return OrderCreated.model_validate_json(json.dumps(event)).order


def a_job(order: Order | None = None, *, vendor: Vendor = Vendor.ZAKEKE, partition: int = 0,
          due_at: float | None = None, **fields: Any) -> Job:
    """A new job of `order` (the example order) for `vendor`, due now unless said."""
    order = order or an_order()
    now = time.time()
    return Job(order_id=fields.pop("order_id", order.order_id), vendor=vendor,
               partition=partition, source_event_id=fields.pop("source_event_id", "e"),
               order=order, created_at=fields.pop("created_at", now),
               due_at=now if due_at is None else due_at, **fields)


class QuietVendor:
    """What every fake vendor adapter shares: nothing to start, stop or check, and polls
    that read the whole order. Subclasses answer `submit` and `poll`."""

    vendor: Vendor = Vendor.ZAKEKE

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def verify_credentials(self) -> str:
        return "ok"

    def polling_view(self, order: Order) -> Order | None:
        return order


class FakePublisher:
    """Keeps what was published."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def publish(self, events: Sequence[transitions.OutputEvent]) -> None:
        self.events.extend(events)


@dataclass
class _Written:
    offset: int


class FakeStore:
    """The tracking topic as a list: every written job, in order, with offsets."""

    def __init__(self) -> None:
        self.records: list[Job] = []
        self.removed: list[JobKey] = []

    async def write(self, job: Job) -> int:
        self.records.append(job)
        return len(self.records) - 1

    async def send(self, job: Job) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(_Written(await self.write(job)))
        return future

    async def remove(self, partition: int, keys: Iterable[JobKey]) -> int | None:
        keys = list(keys)
        self.removed.extend(keys)
        return None if not keys else len(self.records) + len(self.removed) - 1


@dataclass
class FakeTrackingTopic:
    """What the partition owner reads: per partition, its end offset and what a restore of
    it finds (by default nothing)."""

    ends: dict[int, int] = field(default_factory=dict)
    held: dict[int, dict[JobKey, Job]] = field(default_factory=dict)
    restores: list[list[int]] = field(default_factory=list)
    # Set to hold restores until the test lets them finish.
    gate: asyncio.Event | None = None

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        return {p: self.ends.get(p, 0) for p in partitions}

    async def restore(self, partitions: list[int]) -> list[RestoredPartition]:
        self.restores.append(list(partitions))
        if self.gate is not None:
            await self.gate.wait()
        return [RestoredPartition(p, dict(self.held.get(p, {})), {}, 0, self.ends.get(p, 0))
                for p in partitions]


@dataclass
class FakeInput:
    """The intake's input consumer, as the owner pauses and resumes it."""

    paused: set[int] = field(default_factory=set)

    def pause_input(self, partitions: list[int]) -> None:
        self.paused.update(partitions)

    def resume_input(self, partitions: list[int]) -> None:
        self.paused.difference_update(partitions)


class RecordingObserver:
    """A request observer that keeps (vendor, operation, outcome) of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def observe_request(self, vendor: str, operation: str, outcome: str, seconds: float) -> None:
        self.calls.append((vendor, operation, outcome))

    def operations(self) -> list[str]:
        return [operation for _, operation, _ in self.calls]


def zakeke_only(zakeke: Mapping[str, object] | None = None,
                poll: Mapping[str, object] | None = None) -> Settings:
    return Settings(zakeke={"client_id": "a", "client_secret": "b", **(zakeke or {})},
                    smake={"enabled": False}, reevoo={"enabled": False}, poll=dict(poll or {}))


@dataclass
class Engine:
    """The engine as the service wires it, with fakes for Kafka."""

    owner: PartitionOwner
    journal: JobJournal
    scheduler: Any  # orderflow.consumer.scheduler.Scheduler
    publisher: FakePublisher
    store: FakeStore
    topic: FakeTrackingTopic
    input: FakeInput
    metrics: Metrics

    @property
    def table(self) -> JobTable:
        return self.owner.table

    def add(self, job: Job) -> None:
        """A job in the table and its lane, as the intake leaves a new one."""
        self.journal.keep(job)

    async def assign(self, partitions: set[int], total: int = 12) -> None:
        """An assignment, and every restore it starts finished."""
        await self.owner.assigned(partitions, total, self.input)
        await asyncio.gather(*self.owner.restore_tasks())

    async def stop(self, grace_s: float = 1.0) -> None:
        await self.scheduler.stop(grace_s)


async def started_engine(
    adapters: Mapping[Vendor, VendorAdapter], settings: Settings, *,
    publisher: FakePublisher | None = None, store: FakeStore | None = None,
    metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
    topic: FakeTrackingTopic | None = None, partitions: Iterable[int] = (0,),
) -> Engine:
    """A running engine owning `partitions` (restored empty unless `topic` holds jobs)."""
    from orderflow.consumer.scheduler import Scheduler

    metrics = metrics or Metrics(process_collectors=False)
    topic = topic or FakeTrackingTopic()
    owner = PartitionOwner(JobTable(), topic, metrics)
    store = store or FakeStore()
    journal = JobJournal(store, owner)
    publisher = publisher or FakePublisher()
    scheduler = Scheduler(settings, adapters, owner, journal, publisher, metrics, clock=clock,
                          rng=random.Random(1))
    engine = Engine(owner, journal, scheduler, publisher, store, topic, FakeInput(), metrics)
    await scheduler.start()
    await engine.assign(set(partitions))
    return engine


def _fakes_fit_their_ports(publisher: FakePublisher, store: FakeStore, topic: FakeTrackingTopic,
                           input_: FakeInput) -> tuple[EventSink, JobStore, TrackingReader, InputGate]:
    return publisher, store, topic, input_  # mypy checks each fake against its port here
