"""Pairs of one order that wait for each other, through the real engine (partition owner,
journal, lanes, runner) with fake vendors: a Reevoo pair waiting for its order's Smake pair
(ORDERFLOW_REEVOO__SUBMIT_ON=fulfilled) starts once that one completed, or ends cancelled
without a call once it ended otherwise; a restart in between keeps the wait."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from testkit import Engine, FakeTrackingTopic, QuietVendor, a_job, started_engine

from orderflow.adapters.outcomes import Observation, PairState
from orderflow.config.settings import Settings
from orderflow.consumer.jobs import Job, Phase
from orderflow.contracts.events import Order, Vendor, VendorStatus

SETTINGS = Settings(zakeke={"enabled": False}, smake={"api_key": "k"},
                    reevoo={"api_key": "k", "api_secret": "s", "trkref": "T",
                            "submit_on": "fulfilled"},
                    poll={"initial_interval_s": 0.01, "max_interval_s": 0.01,
                          "tracking_deadline_s": 0})


class FakeVendor(QuietVendor):
    """Accepts at once; its second poll ends the pair with `ends_as`."""

    def __init__(self, vendor: Vendor, ends_as: VendorStatus = VendorStatus.COMPLETED) -> None:
        self.vendor = vendor
        self.ends_as = ends_as
        self.submitted: list[tuple[float, PairState]] = []
        self.polls = 0

    async def submit(self, order: Order, state: PairState) -> Observation:
        self.submitted.append((time.time(), state))
        if self.vendor is Vendor.REEVOO:
            return Observation(VendorStatus.COMPLETED, vendor_order_ref="rv-1")
        return Observation(VendorStatus.SUBMITTED, vendor_order_ref="sm-1")

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        self.polls += 1
        if self.polls < 2:
            return Observation(VendorStatus.IN_PROGRESS, vendor_order_ref="sm-1",
                               vendor_state="preparing")
        return Observation(self.ends_as, vendor_order_ref="sm-1", reason="broken press")


def order_pairs() -> tuple[Job, Job]:
    smake = a_job(vendor=Vendor.SMAKE)
    reevoo = replace(a_job(vendor=Vendor.REEVOO), phase=Phase.WAIT, waits_for=Vendor.SMAKE)
    return smake, reevoo


async def both_finished(engine: Engine, *jobs: Job) -> None:
    for _ in range(1_000):
        if all(engine.table.get(job.partition, job.key) is None for job in jobs):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the pairs did not finish within 10 s")


async def run_order(smake: FakeVendor, reevoo: FakeVendor) -> Engine:
    """The order's two pairs through the engine, until both finished."""
    engine = await started_engine({Vendor.SMAKE: smake, Vendor.REEVOO: reevoo}, SETTINGS)
    smake_job, reevoo_job = order_pairs()
    try:
        engine.add(reevoo_job)
        engine.add(smake_job)
        await both_finished(engine, smake_job, reevoo_job)
    finally:
        await engine.stop()
    return engine


async def test_reviews_wait_for_the_production_to_complete() -> None:
    smake, reevoo = FakeVendor(Vendor.SMAKE), FakeVendor(Vendor.REEVOO)
    engine = await run_order(smake, reevoo)
    completed_at = next(e.occurred_at.timestamp() for e in engine.publisher.events
                        if e.vendor is Vendor.SMAKE and e.status is VendorStatus.COMPLETED)
    [(sent_at, state)] = reevoo.submitted
    assert sent_at >= completed_at, "Reevoo was called before the production completed"
    assert state.fulfilled_at is not None and abs(state.fulfilled_at - completed_at) < 1
    statuses = [(e.vendor, e.status) for e in engine.publisher.events]
    assert statuses[-2:] == [(Vendor.REEVOO, VendorStatus.SUBMITTED),
                             (Vendor.REEVOO, VendorStatus.COMPLETED)]


async def test_an_order_never_fulfilled_gets_no_review_request() -> None:
    smake = FakeVendor(Vendor.SMAKE, ends_as=VendorStatus.FAILED)
    reevoo = FakeVendor(Vendor.REEVOO)
    engine = await run_order(smake, reevoo)
    assert reevoo.submitted == [], "Reevoo must never be called for an order that failed"
    [ended] = [e for e in engine.publisher.events if e.vendor is Vendor.REEVOO]
    assert (ended.status, ended.terminal) == (VendorStatus.CANCELLED, True)
    assert ended.reason == "the order was never fulfilled: its Smake pair ended failed"
    # The waiting pair's end was recorded before the Smake pair's: a crash between the two
    # leaves Smake to run again, never Reevoo waiting for a pair that has moved on.
    recorded = [(job.vendor, job.phase) for job in engine.store.records]
    assert recorded.index((Vendor.REEVOO, Phase.DONE)) < recorded.index((Vendor.SMAKE, Phase.DONE))


async def test_a_waiting_pair_restored_after_a_restart_still_waits_and_is_never_run() -> None:
    """The wait is in the pair's record: restored, it is not queued (no deadline runs out on
    it, no call is made) until the pair it waits for moves."""
    smake_job, reevoo_job = order_pairs()
    smake_job = replace(smake_job, phase=Phase.POLL, status=VendorStatus.SUBMITTED,
                        vendor_order_ref="sm-1", due_at=time.time() + 3_600)
    reevoo_job = replace(reevoo_job, created_at=0.0)  # long past any deadline of its own
    topic = FakeTrackingTopic(held={0: {smake_job.key: smake_job, reevoo_job.key: reevoo_job}})
    smake, reevoo = FakeVendor(Vendor.SMAKE), FakeVendor(Vendor.REEVOO)
    engine = await started_engine({Vendor.SMAKE: smake, Vendor.REEVOO: reevoo}, SETTINGS,
                                  topic=topic)
    try:
        await asyncio.sleep(0.3)
        waiting = engine.table.get(0, reevoo_job.key)
        assert waiting is not None and waiting.phase is Phase.WAIT
        assert reevoo.submitted == [] and engine.publisher.events == []
    finally:
        await engine.stop()
