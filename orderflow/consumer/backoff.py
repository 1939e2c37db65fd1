"""Retry and polling intervals. Pure functions of their inputs (the random source is passed)."""

from __future__ import annotations

import random


def retry_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random,
                retry_after_s: float | None = None) -> float:
    """Exponential backoff with full jitter (uniform in [0, min(cap, base * 2^(attempt-1))]),
    so replicas retrying after a shared outage spread out instead of stampeding.
    A vendor's Retry-After is a floor: never call back sooner than asked."""
    attempt = max(1, attempt)
    ceiling = min(cap_s, base_s * (2.0 ** min(attempt - 1, 32)))
    delay = rng.uniform(0.0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def poll_interval(polls_without_change: int, initial_s: float, max_s: float,
                  rng: random.Random) -> float:
    """The wait before the next poll: starts at `initial_s` and doubles while the vendor
    reports nothing new, up to `max_s`; +-10% jitter keeps a burst of orders from polling
    in lockstep forever."""
    interval = min(max_s, initial_s * (2.0 ** min(polls_without_change, 32)))
    return interval * rng.uniform(0.9, 1.1)


class RetryPause:
    """The pause between tries of a Kafka operation that failed (a broker stall, a lost
    coordinator): from `first_s`, doubling to `cap_s`; `reset()` after a success. One
    definition for the service's retry loops (intake, restore, writes, start-up)."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 10.0) -> None:
        self._first_s = first_s
        self._cap_s = cap_s
        self.next_s = first_s

    def reset(self) -> None:
        self.next_s = self._first_s

    def take(self) -> float:
        """The pause to make now; the next one doubles."""
        pause, self.next_s = self.next_s, min(self.next_s * 2, self._cap_s)
        return pause


class VendorBackoff:
    """When a vendor throttles us or keeps failing, every job of that vendor waits, instead of
    each waiting job finding out for itself (a 60 s outage otherwise meets a request from
    every due job, and a 429 burst one per job).

    - A 429 with Retry-After pauses the vendor for that long.
    - `trip_after` failures in a row (5xx, timeouts, refused connections) pause it for
      `base_s`, doubling with each further failure up to `cap_s`; while tripped, one call at
      a time probes the vendor. The first answer that is not a failure closes it again.
    Pure logic: the vendor's lane passes the time in."""

    def __init__(self, trip_after: int = 5, base_s: float = 0.5, cap_s: float = 10.0) -> None:
        self.trip_after = trip_after
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self.pauses = 0  # since the vendor last answered
        self.paused_until = 0.0

    @property
    def tripped(self) -> bool:
        return self.failures >= self.trip_after

    def wait_s(self, now: float) -> float:
        """How long to hold back before the vendor's next call (0: go)."""
        return max(0.0, self.paused_until - now)

    def on_answer(self) -> None:
        """The vendor answered (anything but a failure or a throttle): it is up."""
        self.failures = 0
        self.pauses = 0

    def on_throttled(self, now: float, retry_after_s: float | None) -> None:
        self.paused_until = max(self.paused_until, now + (retry_after_s or self.base_s))

    def on_failure(self, now: float) -> None:
        self.failures += 1
        if not self.tripped or now < self.paused_until:
            return  # not yet tripped, or a call that was already out when the pause began
        self.pauses += 1
        pause = min(self.cap_s, self.base_s * 2.0 ** min(self.pauses - 1, 32))
        self.paused_until = now + pause
