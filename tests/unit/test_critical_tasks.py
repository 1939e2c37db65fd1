"""A critical task that dies is reported once, with its name and error; one that is
cancelled or returns is not a failure."""

from __future__ import annotations

import asyncio

from orderflow.consumer.critical import CriticalTasks


async def test_a_task_that_raises_is_the_failure() -> None:
    critical = CriticalTasks()

    async def dies() -> None:
        raise ValueError("Exceeds the limit (4300 digits)")

    critical.spawn(dies(), name="intake")
    failure = await asyncio.wait_for(critical.wait_failed(), 1)
    assert failure == "task 'intake' died: ValueError: Exceeds the limit (4300 digits)"


async def test_cancelled_or_finished_tasks_are_no_failure() -> None:
    critical = CriticalTasks()

    async def returns() -> None:
        return None

    done = critical.spawn(returns(), name="lag")
    sleeper = critical.spawn(asyncio.sleep(10), name="restore")
    await done
    sleeper.cancel()
    await asyncio.gather(sleeper, return_exceptions=True)
    assert critical.failure is None


async def test_only_the_first_failure_is_kept() -> None:
    critical = CriticalTasks()

    async def dies(n: int) -> None:
        raise RuntimeError(str(n))

    first = critical.spawn(dies(1), name="one")
    await asyncio.gather(first, return_exceptions=True)
    second = critical.spawn(dies(2), name="two")
    await asyncio.gather(second, return_exceptions=True)
    assert critical.failure == "task 'one' died: RuntimeError: 1"
