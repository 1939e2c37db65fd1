"""The life of each input partition this replica owns, in one place (docs/architecture.md,
decision 5):

    assigned -> RESTORING -> OPEN -> CLOSING -> gone
                               ^________|        (kept across a rebalance: open again)

- RESTORING: its tracking state is being read; none of its jobs run and its input is not read.
- OPEN: its jobs run and its input is read.
- CLOSING: revoked; nothing of it starts, the calls it has running are let finish.

The intake moves partitions along (it hears of assignments and revocations); the scheduler
asks whether a partition is open and registers the calls it starts here, so a hand-over can
wait for exactly the calls of the partitions it hands over. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum


class Stage(StrEnum):
    RESTORING = "restoring"
    OPEN = "open"
    CLOSING = "closing"


class Partitions:
    def __init__(self) -> None:
        self._stage: dict[int, Stage] = {}
        self._restores: dict[int, asyncio.Task[None]] = {}
        self._running: dict[int, set[asyncio.Task[None]]] = {}

    # ------------------------------------------------------------------ questions

    def owned(self) -> set[int]:
        """Every partition of the current assignment, whatever its stage."""
        return set(self._stage)

    def restored(self) -> set[int]:
        """Owned partitions whose tracking state is in the job table."""
        return {p for p, stage in self._stage.items() if stage is not Stage.RESTORING}

    def restoring(self) -> list[int]:
        return sorted(p for p, stage in self._stage.items() if stage is Stage.RESTORING)

    def is_open(self, partition: int) -> bool:
        return self._stage.get(partition) is Stage.OPEN

    def is_restored(self, partition: int) -> bool:
        stage = self._stage.get(partition)
        return stage is not None and stage is not Stage.RESTORING

    def open_partitions(self) -> list[int]:
        return sorted(p for p, stage in self._stage.items() if stage is Stage.OPEN)

    # ------------------------------------------------------------------ moves

    def assign(self, partition: int, restore: asyncio.Task[None]) -> None:
        """A partition to restore (by `restore`, which may restore others too)."""
        self._stage[partition] = Stage.RESTORING
        self._restores[partition] = restore

    def open(self, partition: int) -> None:
        """Restored (or kept across a rebalance): its jobs may run."""
        self._stage[partition] = Stage.OPEN
        self._restores.pop(partition, None)
        self._running.setdefault(partition, set())

    def close(self, partitions: set[int] | list[int]) -> list[asyncio.Task[None]]:
        """Revoked: nothing of these starts any more. Returns their calls still running."""
        running: list[asyncio.Task[None]] = []
        for partition in partitions:
            if self._stage.get(partition) is Stage.OPEN:
                self._stage[partition] = Stage.CLOSING
            running.extend(self._running.get(partition, ()))
        return running

    def forget(self, partition: int) -> None:
        """No longer ours (or our state of it is stale). A restore that reads only this
        partition is cancelled."""
        self._stage.pop(partition, None)
        self._running.pop(partition, None)
        task = self._restores.pop(partition, None)
        if task is not None and not any(t is task for t in self._restores.values()):
            task.cancel()

    def restore_tasks(self) -> list[asyncio.Task[None]]:
        return list({id(t): t for t in self._restores.values()}.values())

    # ------------------------------------------------------------------ calls

    def add_call(self, partition: int, task: asyncio.Task[None]) -> None:
        """A call started for one of the partition's jobs; it leaves the count when done."""
        calls = self._running.setdefault(partition, set())
        calls.add(task)
        task.add_done_callback(calls.discard)

    def calls_running(self) -> int:
        return sum(len(calls) for calls in self._running.values())
