"""The service's long-running tasks, watched: one that ends by an error brings the process
down loudly instead of leaving it half alive.

Before this, an intake loop killed by one unexpected exception ended without a log line;
the process kept answering /metrics and, for a while, /healthz, and its partitions stood
still until the liveness probe gave up on it. Now the error is logged with its traceback
and the application stops and exits non-zero at once, so Kubernetes restarts it and the
group hands its partitions on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from orderflow.consumer.logging import get_logger

log = get_logger(__name__)


class CriticalTasks:
    """Spawns tasks whose failure is fatal, and remembers the first failure."""

    def __init__(self) -> None:
        self.failure: str | None = None
        self._failed = asyncio.Event()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None or self.failure is not None:
            return
        self.failure = f"task {task.get_name()!r} died: {type(error).__name__}: {error}"
        log.critical("a critical task died, stopping the service", task=task.get_name(),
                     exc_info=(type(error), error, error.__traceback__))
        self._failed.set()

    async def wait_failed(self) -> str:
        await self._failed.wait()
        assert self.failure is not None
        return self.failure
