"""A vendor's budget is cluster-wide: each replica takes the share of the input partitions
it owns, and its concurrency slots follow that share when it changes."""

from __future__ import annotations

import asyncio

from orderflow.consumer.limits import Slots, budget_share


def test_shares_add_up_to_the_cluster_figure() -> None:
    assert budget_share(32, 12, 12) == 32
    shares = [budget_share(30.0, owned, 12) for owned in (4, 4, 4)]
    assert sum(shares) == 30.0
    # From 3 replicas to 12: what the vendor sees stays the same.
    assert sum(budget_share(30.0, 1, 12) for _ in range(12)) == 30.0
    assert budget_share(10, 0, 12) == 0
    assert budget_share(10, 3, 0) == 10  # no partition count yet: the whole figure


async def test_slots_follow_a_smaller_and_a_larger_share() -> None:
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    slots.resize(1)
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    slots.release()  # 1 in use of 1: still full
    await asyncio.sleep(0.01)
    assert not waiting.done()
    slots.resize(3)
    await asyncio.wait_for(waiting, 1)
    assert slots.in_use == 2


async def test_a_cancelled_wait_leaves_no_trace() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    slots.release()
    await asyncio.wait_for(slots.acquire(), 1)
    assert slots.in_use == 1
