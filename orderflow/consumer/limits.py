"""A vendor's call budget on this replica: a rate limiter, concurrency slots that can be
resized, and the share of a cluster-wide figure that a replica takes (docs/architecture.md,
decision 9)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

Clock = Callable[[], float]


class RateLimiter:
    """Starts at most `per_second` calls a second (a token bucket of one second's burst)."""

    def __init__(self, per_second: float, clock: Clock = time.monotonic) -> None:
        self._rate = per_second
        self._clock = clock
        self._tokens = max(1.0, per_second)
        self._last = clock()

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, per_second: float) -> None:
        self._rate = max(per_second, 1e-6)
        self._tokens = min(self._tokens, max(1.0, self._rate))

    async def acquire(self) -> None:
        while True:
            now = self._clock()
            self._tokens = min(max(1.0, self._rate), self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)


class Slots:
    """A semaphore whose size can change (the replica's share of a cluster-wide budget):
    calls running above a smaller size finish, and no new one starts until below it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self) -> None:
        while self.in_use >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def resize(self, size: int) -> None:
        self.size = max(1, size)
        self._wake()

    def _wake(self) -> None:
        # Every waiter looks again (a lane has one: its dispatcher).
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def budget_share(cluster_figure: float, owned: int, total: int) -> float:
    """This replica's share of a cluster-wide figure: as many parts as the input partitions
    it owns. With no partition count known yet, the whole figure."""
    if total <= 0:
        return cluster_figure
    return cluster_figure * owned / total
