"""Retry backoff (exponential, full jitter, capped, Retry-After as a floor) and the polling
interval (doubling while nothing changes, capped, +-10% jitter), with a seeded random."""

from __future__ import annotations

import random
import statistics

import pytest

from orderflow.consumer.backoff import RetryPause, VendorBackoff, poll_interval, retry_delay

SAMPLES = 2000


def delays(attempt: int, base: float = 1.0, cap: float = 60.0, retry_after: float | None = None,
           seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [retry_delay(attempt, base, cap, rng, retry_after) for _ in range(SAMPLES)]


# ----------------------------------------------------------------------------- retry_delay


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 32.0)])
def test_full_jitter_spans_zero_to_the_exponential_ceiling(attempt: int, ceiling: float) -> None:
    sample = delays(attempt)
    assert all(0.0 <= d <= ceiling for d in sample)
    # Full jitter: the whole range is used, not a band around the ceiling.
    assert min(sample) < 0.05 * ceiling
    assert max(sample) > 0.95 * ceiling
    assert statistics.mean(sample) == pytest.approx(ceiling / 2, rel=0.1)


@pytest.mark.parametrize("attempt", [7, 8, 20, 64, 10_000])
def test_the_cap_bounds_every_delay(attempt: int) -> None:
    sample = delays(attempt, cap=60.0)
    assert all(0.0 <= d <= 60.0 for d in sample)
    assert max(sample) > 0.95 * 60.0


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempts_below_one_count_as_the_first(attempt: int) -> None:
    assert delays(attempt) == delays(1)


def test_retry_after_is_a_floor_even_above_the_cap() -> None:
    assert delays(1, cap=5.0, retry_after=30.0) == [30.0] * SAMPLES


def test_retry_after_below_the_jitter_only_lifts_the_short_delays() -> None:
    sample = delays(5, retry_after=3.0)
    assert all(3.0 <= d <= 16.0 for d in sample)
    assert sample.count(3.0) > 0
    assert max(sample) > 15.0


def test_retry_after_zero_changes_nothing() -> None:
    assert delays(4, retry_after=0.0) == delays(4)


def test_same_seed_same_delays_and_another_seed_differs() -> None:
    assert delays(3, seed=1) == delays(3, seed=1)
    assert delays(3, seed=1) != delays(3, seed=2)


# ----------------------------------------------------------------------------- poll_interval


def intervals(polls: int, initial: float = 5.0, maximum: float = 300.0, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [poll_interval(polls, initial, maximum, rng) for _ in range(SAMPLES)]


@pytest.mark.parametrize(("polls", "nominal"), [(0, 5.0), (1, 10.0), (2, 20.0), (3, 40.0), (5, 160.0)])
def test_poll_interval_doubles_while_nothing_changes(polls: int, nominal: float) -> None:
    sample = intervals(polls)
    assert all(0.9 * nominal <= i <= 1.1 * nominal for i in sample)
    assert statistics.mean(sample) == pytest.approx(nominal, rel=0.02)
    # Jitter of +-10% keeps a burst of orders from polling in lockstep.
    assert max(sample) - min(sample) > 0.18 * nominal


@pytest.mark.parametrize("polls", [6, 7, 50, 10_000])
def test_poll_interval_is_capped_at_the_maximum_give_or_take_the_jitter(polls: int) -> None:
    sample = intervals(polls)
    assert all(0.9 * 300.0 <= i <= 1.1 * 300.0 for i in sample)
    assert statistics.mean(sample) == pytest.approx(300.0, rel=0.02)


def test_poll_interval_starts_at_the_initial_interval_when_it_equals_the_maximum() -> None:
    assert all(4.5 <= i <= 5.5 for i in intervals(3, initial=5.0, maximum=5.0))


def test_poll_interval_is_reproducible_with_a_seed() -> None:
    assert intervals(2, seed=3) == intervals(2, seed=3)


def test_vendor_backoff_retry_after_pauses_the_vendor_for_that_long():
    backoff = VendorBackoff()
    backoff.on_throttled(100.0, 2.0)
    assert backoff.wait_s(100.5) == 1.5
    assert backoff.wait_s(102.0) == 0.0
    assert not backoff.tripped  # a throttle is not a failure


def test_vendor_backoff_trips_after_failures_in_a_row_and_doubles_per_probe_up_to_the_cap():
    backoff = VendorBackoff(trip_after=3, base_s=1.0, cap_s=4.0)
    backoff.on_failure(0.0)
    backoff.on_failure(0.0)
    assert backoff.wait_s(0.0) == 0.0 and not backoff.tripped
    backoff.on_failure(0.0)
    assert backoff.tripped and backoff.wait_s(0.0) == 1.0
    backoff.on_failure(0.5)  # a call already out when the pause began: no longer pause
    assert backoff.wait_s(0.5) == 0.5
    backoff.on_failure(10.0)  # the probe after the pause failed
    assert backoff.wait_s(10.0) == 2.0
    for probe in range(10):
        backoff.on_failure(20.0 + 10 * probe)
    assert backoff.wait_s(110.0) == 4.0


def test_vendor_backoff_an_answer_closes_it_and_failures_count_again_from_zero():
    backoff = VendorBackoff(trip_after=2)
    backoff.on_failure(0.0)
    backoff.on_answer()
    backoff.on_failure(0.0)
    assert not backoff.tripped
    backoff.on_failure(0.0)
    assert backoff.tripped
    backoff.on_answer()
    assert not backoff.tripped


def test_a_retry_pause_doubles_to_its_cap_and_starts_again_after_a_success() -> None:
    pause = RetryPause(first_s=0.5, cap_s=3.0)
    assert [pause.take() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    pause.reset()
    assert pause.take() == 0.5
