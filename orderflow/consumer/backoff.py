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
