"""The engine's own CPU per pair, without Kafka or HTTP: N pairs through the real partition
owner, journal, lanes and runner, with an instant vendor (submit, then polls until
completed) and in-memory stand-ins for the tracking topic and the publisher.

    python -m bench.engine_cpu [--pairs 5000] [--rounds 5]

Side by side, in the same run: the CPU of reading the pair's order from its JSON once (what
every run of a job pays, `Job.read_order`), the floor no engine change can go under. The
machines are shared: compare the ratio, and medians, between commits.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import time
from collections.abc import Iterable, Sequence
from typing import Any

from orderflow.adapters.outcomes import Observation, PairState
from orderflow.config.settings import LogSettings, Settings
from orderflow.consumer import transitions
from orderflow.consumer.jobs import Job, JobKey, JobTable
from orderflow.consumer.journal import JobJournal
from orderflow.consumer.logging import configure_logging
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner
from orderflow.consumer.scheduler import Scheduler
from orderflow.consumer.tracking import RestoredPartition
from orderflow.contracts.events import Order, Vendor, VendorStatus
from orderflow.sandbox.samples import sample_orders


class InstantVendor:
    """Accepts at once; each pair is in progress at its first poll, completed at its second."""

    vendor = Vendor.ZAKEKE

    def __init__(self) -> None:
        self.polls: dict[str, int] = {}

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def verify_credentials(self) -> str:
        return "ok"

    def polling_view(self, order: Order) -> Order | None:
        return order

    async def submit(self, order: Order, state: PairState) -> Observation:
        await state.intend_to_create()
        return Observation(VendorStatus.SUBMITTED, vendor_order_ref=order.order_id)

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        ref = state.vendor_order_ref or ""
        self.polls[ref] = seen = self.polls.get(ref, 0) + 1
        status = VendorStatus.COMPLETED if seen >= 2 else VendorStatus.IN_PROGRESS
        return Observation(status, vendor_order_ref=ref, vendor_state=f"step-{seen}")


class Written:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class MemoryTopic:
    """The tracking topic and the publisher, kept in memory."""

    def __init__(self, expected_events: int = 0) -> None:
        self.records = 0
        self.events = 0
        self.expected_events = expected_events
        self.all_published = asyncio.Event()

    async def write(self, job: Job) -> int:
        self.records += 1
        return self.records

    async def send(self, job: Job) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(Written(await self.write(job)))
        return future

    async def remove(self, partition: int, keys: Iterable[JobKey]) -> int | None:
        return None

    async def publish(self, events: Sequence[transitions.OutputEvent]) -> None:
        self.events += len(events)
        if self.events >= self.expected_events:
            self.all_published.set()

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        return dict.fromkeys(partitions, 0)

    async def restore(self, partitions: list[int]) -> list[RestoredPartition]:
        return [RestoredPartition(p, {}, {}, 0, 0) for p in partitions]


class NoInput:
    def pause_input(self, partitions: list[int]) -> None: ...

    def resume_input(self, partitions: list[int]) -> None: ...


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def engine_round(orders: list[Order]) -> float:
    """CPU seconds per pair for every pair to end."""
    settings = Settings(zakeke={"client_id": "a", "client_secret": "b", "max_concurrency": 64},
                        smake={"enabled": False}, reevoo={"enabled": False},
                        poll={"initial_interval_s": 0.001, "max_interval_s": 0.001,
                              "deadline_s": 10**9})
    metrics = Metrics(process_collectors=False)
    topic = MemoryTopic(expected_events=3 * len(orders))  # submitted, in_progress, completed
    owner = PartitionOwner(JobTable(), topic, metrics)
    journal = JobJournal(topic, owner)
    scheduler = Scheduler(settings, {Vendor.ZAKEKE: InstantVendor()}, owner, journal, topic,
                          metrics, rng=random.Random(1))
    await scheduler.start()
    await owner.assigned({0}, 1, NoInput())
    await asyncio.gather(*owner.restore_tasks())
    now = time.time()
    jobs = [Job(order_id=order.order_id, vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
                order=order, created_at=now, due_at=now) for order in orders]
    began = cpu_s()
    for job in jobs:
        journal.keep(job)
    await asyncio.wait_for(topic.all_published.wait(), 600)
    spent = cpu_s() - began
    await scheduler.stop(1.0)
    assert topic.events == 3 * len(orders) and not owner.table.active_jobs(0), topic.events
    return spent / len(orders)


def floor_round(orders: list[Order]) -> float:
    """CPU seconds per pair of reading its order from JSON once."""
    raw = [order.model_dump_json(exclude_none=True).encode() for order in orders]
    began = cpu_s()
    for data in raw:
        Order.model_validate_json(data)
    return (cpu_s() - began) / len(orders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging(LogSettings(level="CRITICAL"))
    orders = [Order.model_validate(event["order"])
              for event in sample_orders(args.pairs, seed=3, prefix="CPU", shape="zakeke")]
    engine, floor = [], []
    for _ in range(args.rounds):
        engine.append(asyncio.run(engine_round(orders)))
        floor.append(floor_round(orders))
    per_pair, read = statistics.median(engine) * 1e6, statistics.median(floor) * 1e6
    print(f"engine CPU per pair, us (median of {args.rounds})   {per_pair:8.1f}   "
          f"rounds: {', '.join(f'{x * 1e6:.0f}' for x in engine)}")
    print(f"floor: one order read from JSON, us           {read:8.1f}")
    print(f"ratio: engine / floor                          {per_pair / read:8.1f}")


if __name__ == "__main__":
    main()
