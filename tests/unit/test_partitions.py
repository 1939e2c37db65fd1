"""A partition's life, in one place: assigned (restoring) -> open -> closing -> gone, and
kept across a rebalance back to open. What the intake and the scheduler ask of it."""

from __future__ import annotations

import asyncio

from orderflow.consumer.partitions import Partitions


async def never() -> None:
    await asyncio.Event().wait()


async def test_a_partition_runs_only_while_open_and_counts_its_calls() -> None:
    parts = Partitions()
    restore = asyncio.create_task(never())
    parts.assign(0, restore)
    parts.assign(1, restore)
    assert parts.owned() == {0, 1} and parts.restoring() == [0, 1]
    assert not parts.is_open(0) and not parts.is_restored(0)

    parts.open(0)
    assert parts.is_open(0) and parts.is_restored(0) and parts.restoring() == [1]
    call = asyncio.create_task(asyncio.sleep(0.01))
    parts.add_call(0, call)
    assert parts.calls_running() == 1

    running = parts.close({0, 1})
    assert running == [call] and not parts.is_open(0) and parts.is_restored(0)
    assert parts.owned() == {0, 1}, "closing is still owned, until the next assignment says"
    await call
    assert parts.calls_running() == 0

    parts.open(0)  # kept across the rebalance
    assert parts.open_partitions() == [0]
    parts.forget(1)  # the only partition its restore was for: the restore is cancelled
    await asyncio.sleep(0)
    assert restore.cancelled() and parts.owned() == {0}


async def test_a_shared_restore_is_cancelled_only_with_its_last_partition() -> None:
    parts = Partitions()
    restore = asyncio.create_task(never())
    parts.assign(2, restore)
    parts.assign(3, restore)
    assert parts.restore_tasks() == [restore]
    parts.forget(2)
    await asyncio.sleep(0)
    assert not restore.cancelled()
    parts.forget(3)
    await asyncio.sleep(0)
    assert restore.cancelled() and parts.restore_tasks() == []
