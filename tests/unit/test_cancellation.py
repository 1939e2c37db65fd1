"""An order's cancellation (contract, "order.cancelled") at every timing, through the real
engine (partition owner, journal, lanes, runner) with fake vendors: before the order, while
a pair waits, while a create runs, while Smake produces (cancelled, or refused and followed
to its real end), after a pair ended, and Zakeke while its files are pending. Each pair
still ends with exactly one terminal status."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from testkit import Engine, FakeTrackingTopic, QuietVendor, a_job, started_engine

from orderflow.adapters.errors import VendorRejected
from orderflow.adapters.outcomes import CreateNotAllowed, Observation, PairState
from orderflow.config.settings import Settings
from orderflow.consumer import transitions
from orderflow.consumer.jobs import Job, Phase
from orderflow.contracts.control import Cancel
from orderflow.contracts.events import (
    Order,
    OrderCancellationRefused,
    OrderVendorStatus,
    Vendor,
    VendorStatus,
)

SETTINGS = Settings(zakeke={"client_id": "c", "client_secret": "s"}, smake={"api_key": "k"},
                    reevoo={"api_key": "k", "api_secret": "s", "trkref": "T",
                            "submit_on": "fulfilled"},
                    poll={"initial_interval_s": 0.01, "max_interval_s": 0.01,
                          "tracking_deadline_s": 0})
CANCEL = Cancel(at=time.time(), order_id="SHOP-100234", event_id="cancel-1",
                reason="customer asked to cancel")


class FakeVendor(QuietVendor):
    """Creates at once (or when `release` is set); polls say `preparing`; cancels as told."""

    def __init__(self, vendor: Vendor, *, cancel_refused: str | None = None,
                 hold_create: bool = False) -> None:
        self.vendor = vendor
        self.cancel_refused = cancel_refused
        self.release = asyncio.Event()
        if not hold_create:
            self.release.set()
        self.creating = asyncio.Event()
        self.created: list[str] = []
        self.cancels = 0
        self.polls = 0

    async def submit(self, order: Order, state: PairState) -> Observation:
        await state.intend_to_create()  # refuses a cancelled order before anything leaves
        self.creating.set()
        await self.release.wait()
        self.created.append(order.order_id)
        if self.vendor is Vendor.REEVOO:
            return Observation(VendorStatus.COMPLETED, vendor_order_ref="rv-1")
        return Observation(VendorStatus.SUBMITTED, vendor_order_ref=f"{self.vendor}-1")

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        self.polls += 1
        return Observation(VendorStatus.IN_PROGRESS, vendor_order_ref=state.vendor_order_ref,
                           vendor_state="preparing")

    async def cancel(self, order: Order | None, state: PairState) -> Observation:
        self.cancels += 1
        if self.cancel_refused is not None:
            raise VendorRejected(self.vendor, "cancel_order", self.cancel_refused, 422)
        return Observation(VendorStatus.CANCELLED, vendor_order_ref=state.vendor_order_ref,
                           vendor_state="cancelled")


def vendors(**options: FakeVendor) -> dict[Vendor, FakeVendor]:
    made = {vendor: FakeVendor(vendor) for vendor in Vendor}
    made.update({Vendor(name): fake for name, fake in options.items()})
    return made


async def until(check, what: str, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


def terminal(engine: Engine) -> dict[Vendor, list[OrderVendorStatus]]:
    found: dict[Vendor, list[OrderVendorStatus]] = {}
    for event in engine.publisher.events:
        if isinstance(event, OrderVendorStatus) and event.terminal:
            found.setdefault(event.vendor, []).append(event)
    return found


def refusals(engine: Engine) -> list[OrderCancellationRefused]:
    return [e for e in engine.publisher.events if isinstance(e, OrderCancellationRefused)]


async def cancel(engine: Engine, given: Cancel = CANCEL) -> None:
    """What the control reader does with a `cancel/` record."""
    if engine.scheduler.cancellations.note(given):
        await engine.scheduler.cancel(given)


def new_pairs(*vendors_: Vendor) -> list[Job]:
    return [a_job(vendor=vendor) for vendor in vendors_]


async def test_an_order_cancelled_before_it_came_is_never_sent() -> None:
    fakes = vendors()
    engine = await started_engine(fakes, SETTINGS)
    try:
        await cancel(engine)
        for job in new_pairs(Vendor.ZAKEKE, Vendor.SMAKE, Vendor.REEVOO):
            engine.add(job)
        await until(lambda: len(terminal(engine)) == 3, "every pair ending")
    finally:
        await engine.stop()
    assert all(fake.created == [] for fake in fakes.values())
    for vendor, [ended] in terminal(engine).items():
        assert ended.status is VendorStatus.CANCELLED, vendor
        assert ended.reason == "customer asked to cancel"
    assert not any(e.status is VendorStatus.SUBMITTED for e in engine.publisher.events
                   if isinstance(e, OrderVendorStatus))


async def test_waiting_pairs_end_cancelled_not_rejected_or_never_fulfilled() -> None:
    """Smake waits for Zakeke's artwork, Reevoo waits for Smake: the cancellation ends all
    three, each `cancelled` with its reason, none sent."""
    zakeke = FakeVendor(Vendor.ZAKEKE, hold_create=True)
    fakes = vendors(zakeke=zakeke)
    engine = await started_engine(fakes, SETTINGS)
    zakeke_job, smake_job, reevoo_job = new_pairs(Vendor.ZAKEKE, Vendor.SMAKE, Vendor.REEVOO)
    try:
        engine.add(replace(smake_job, phase=Phase.WAIT, waits_for=Vendor.ZAKEKE))
        engine.add(replace(reevoo_job, phase=Phase.WAIT, waits_for=Vendor.SMAKE))
        engine.add(zakeke_job)
        await zakeke.creating.wait()
        await cancel(engine)  # Zakeke's registration is running; the others wait
        zakeke.release.set()
        await until(lambda: len(terminal(engine)) == 3, "every pair ending")
    finally:
        await engine.stop()
    ended = {vendor: events[0] for vendor, events in terminal(engine).items()}
    assert {v: e.status for v, e in ended.items()} == dict.fromkeys(Vendor, VendorStatus.CANCELLED)
    assert ended[Vendor.SMAKE].reason == ended[Vendor.REEVOO].reason == "customer asked to cancel"
    # Zakeke took the order before the cancellation reached it: it keeps it, and says so.
    assert ended[Vendor.ZAKEKE].reason == f"customer asked to cancel; {transitions.ZAKEKE_KEEPS_IT}"
    assert fakes[Vendor.SMAKE].created == fakes[Vendor.REEVOO].created == []


async def test_a_create_running_when_the_cancellation_came_is_cancelled_once_it_exists() -> None:
    smake = FakeVendor(Vendor.SMAKE, hold_create=True)
    engine = await started_engine(vendors(smake=smake), SETTINGS)
    [job] = new_pairs(Vendor.SMAKE)
    try:
        engine.add(job)
        await smake.creating.wait()
        await cancel(engine)
        smake.release.set()
        await until(lambda: Vendor.SMAKE in terminal(engine), "the Smake pair ending")
    finally:
        await engine.stop()
    assert smake.created == [job.order_id] and smake.cancels == 1
    [ended] = terminal(engine)[Vendor.SMAKE]
    assert (ended.status, ended.vendor_order_ref) == (VendorStatus.CANCELLED, "smake-1")
    assert refusals(engine) == []


async def test_smake_in_production_is_cancelled_there_within_a_moment() -> None:
    smake = FakeVendor(Vendor.SMAKE)
    engine = await started_engine(vendors(smake=smake), SETTINGS)
    [job] = new_pairs(Vendor.SMAKE)
    producing = replace(job, phase=Phase.POLL, status=VendorStatus.IN_PROGRESS,
                        vendor_order_ref="smake-1", intent_at=job.created_at,
                        due_at=time.time() + 3_600)  # its next poll is an hour away
    try:
        engine.add(producing)
        started = time.monotonic()
        await cancel(engine)
        await until(lambda: Vendor.SMAKE in terminal(engine), "the Smake pair ending")
        took = time.monotonic() - started
    finally:
        await engine.stop()
    assert smake.cancels == 1 and took < 2.0
    assert terminal(engine)[Vendor.SMAKE][0].status is VendorStatus.CANCELLED


async def test_a_refused_cancel_is_said_once_and_the_production_followed_to_its_end() -> None:
    smake = FakeVendor(Vendor.SMAKE, cancel_refused="Order 7 can no longer be cancelled.")
    engine = await started_engine(vendors(smake=smake), SETTINGS)
    [job] = new_pairs(Vendor.SMAKE)
    try:
        engine.add(replace(job, phase=Phase.POLL, status=VendorStatus.IN_PROGRESS,
                           vendor_order_ref="smake-1", intent_at=job.created_at))
        await cancel(engine)
        await cancel(engine, CANCEL.model_copy(update={"event_id": "cancel-2"}))  # a second one: nothing more
        await until(lambda: smake.polls >= 3, "the pair being followed on")
        current = engine.table.get(job.partition, job.key)
    finally:
        await engine.stop()
    [refused] = refusals(engine)
    assert (refused.vendor, refused.reason, refused.source_event_id) == (
        Vendor.SMAKE, "Order 7 can no longer be cancelled.", "cancel-1")
    assert smake.cancels == 1
    assert current is not None and current.phase is Phase.POLL and not current.cancelling
    assert Vendor.SMAKE not in terminal(engine)


async def test_zakeke_with_files_pending_stops_being_followed_and_says_it_keeps_the_order() -> None:
    zakeke = FakeVendor(Vendor.ZAKEKE)
    engine = await started_engine(vendors(zakeke=zakeke), SETTINGS)
    [job] = new_pairs(Vendor.ZAKEKE)
    try:
        engine.add(replace(job, phase=Phase.POLL, status=VendorStatus.SUBMITTED,
                           vendor_order_ref="zakeke-1", intent_at=job.created_at))
        await cancel(engine)
        await until(lambda: Vendor.ZAKEKE in terminal(engine), "the Zakeke pair ending")
        polls = zakeke.polls
        await asyncio.sleep(0.1)
    finally:
        await engine.stop()
    [ended] = terminal(engine)[Vendor.ZAKEKE]
    assert ended.status is VendorStatus.CANCELLED
    assert transitions.ZAKEKE_KEEPS_IT in (ended.reason or "")
    assert zakeke.polls == polls, "a cancelled Zakeke pair is no longer followed"
    assert not any(e.event_type == "order.print_files_ready" for e in engine.publisher.events)


@pytest.mark.parametrize("vendor", list(Vendor))
async def test_a_completed_pair_gets_one_refusal_and_keeps_its_one_terminal_status(
        vendor: Vendor) -> None:
    fakes = vendors()
    engine = await started_engine(fakes, replace_settings_without_waits())
    [job] = new_pairs(vendor)
    try:
        engine.add(replace(job, phase=Phase.DONE, status=VendorStatus.COMPLETED,
                           finished_at=time.time(), order_json=None))
        await cancel(engine)
        await cancel(engine)  # read again (a restart of the reader): nothing more
        await engine.scheduler.cancel(CANCEL)
    finally:
        await engine.stop()
    [refused] = refusals(engine)
    assert refused.reason == transitions.REFUSED_AFTER_COMPLETION[vendor]
    assert terminal(engine) == {}


async def test_a_pair_that_ended_otherwise_gets_nothing() -> None:
    engine = await started_engine(vendors(), SETTINGS)
    [job] = new_pairs(Vendor.SMAKE)
    try:
        engine.add(replace(job, phase=Phase.DONE, status=VendorStatus.FAILED,
                           finished_at=time.time()))
        await cancel(engine)
    finally:
        await engine.stop()
    assert engine.publisher.events == []


async def test_a_cancellation_read_while_nobody_owned_the_partition_applies_when_it_opens() -> None:
    """Read while another replica (or none) owned the order's partition: the cancellation is
    kept, and the pairs restored here get it."""
    [job] = new_pairs(Vendor.SMAKE)
    producing = replace(job, phase=Phase.POLL, status=VendorStatus.IN_PROGRESS,
                        vendor_order_ref="smake-1", intent_at=job.created_at, partition=3,
                        due_at=time.time() + 3_600)
    smake = FakeVendor(Vendor.SMAKE)
    engine = await started_engine(vendors(smake=smake), SETTINGS,
                                  topic=FakeTrackingTopic(held={3: {producing.key: producing}}))
    try:
        await cancel(engine)  # partition 3 is not this replica's yet
        assert smake.cancels == 0
        await engine.assign({0, 3})
        await until(lambda: Vendor.SMAKE in terminal(engine), "the Smake pair ending")
    finally:
        await engine.stop()
    assert smake.cancels == 1


async def test_a_create_of_a_cancelled_order_with_an_intent_asks_first_and_creates_nothing() -> None:
    """After a crash between the intent and the answer: Smake is asked; holding nothing, the
    pair ends cancelled and nothing is created."""

    class Empty(FakeVendor):
        async def submit(self, order: Order, state: PairState) -> Observation:
            assert state.intent_at is not None and state.ask_first
            await state.intend_to_create()  # nothing found: the create would come now
            raise AssertionError("the create went out")

    smake = Empty(Vendor.SMAKE)
    engine = await started_engine(vendors(smake=smake), SETTINGS)
    [job] = new_pairs(Vendor.SMAKE)
    try:
        await cancel(engine)
        engine.add(replace(job, intent_at=job.created_at))
        await until(lambda: Vendor.SMAKE in terminal(engine), "the Smake pair ending")
    finally:
        await engine.stop()
    [ended] = terminal(engine)[Vendor.SMAKE]
    assert ended.status is VendorStatus.CANCELLED and ended.reason == "customer asked to cancel"


def replace_settings_without_waits() -> Settings:
    return SETTINGS.model_copy(update={"reevoo": SETTINGS.reevoo.model_copy(
        update={"submit_on": "placed"})})


def test_a_refusal_event_id_is_the_same_for_the_pair_and_cancellation() -> None:
    job = replace(a_job(vendor=Vendor.REEVOO), cancel_id="c-1")
    first = transitions.cancellation_refused(job, "why", 1.0)
    again = transitions.cancellation_refused(job, "why", 2.0)
    other = transitions.cancellation_refused(replace(job, cancel_id="c-2"), "why", 1.0)
    assert first.event_id == again.event_id != other.event_id


def test_create_not_allowed_for_a_cancelled_pair_ends_it_cancelled_not_rejected() -> None:
    job = replace(a_job(vendor=Vendor.SMAKE), cancel_id="c-1", cancel_reason="changed mind")
    decision = transitions.after_call(job, CreateNotAllowed("cancelled"), 5.0, SETTINGS.poll,
                                      __import__("random").Random(1), intent_before=None)
    [event] = decision.step.events
    assert isinstance(event, OrderVendorStatus)
    assert (event.status, event.reason) == (VendorStatus.CANCELLED, "changed mind")


async def test_a_crash_between_create_and_cancel_leaves_the_next_owner_to_cancel_what_exists() -> None:
    """The record holds the intent and the cancellation (the replica died after Smake took the
    order, before the answer was recorded): the next owner asks Smake, finds the order, and
    cancels it there."""

    class Holding(FakeVendor):
        async def submit(self, order: Order, state: PairState) -> Observation:
            assert state.intent_at is not None  # asked first: Smake holds it
            return Observation(VendorStatus.IN_PROGRESS, vendor_order_ref="smake-7",
                               vendor_state="checking")

    [job] = new_pairs(Vendor.SMAKE)
    crashed = replace(job, intent_at=job.created_at, cancel_id=CANCEL.event_id,
                      cancel_reason=CANCEL.reason, partition=2)
    smake = Holding(Vendor.SMAKE)
    engine = await started_engine(vendors(smake=smake), SETTINGS, partitions=(2,),
                                  topic=FakeTrackingTopic(held={2: {crashed.key: crashed}}))
    try:
        await until(lambda: Vendor.SMAKE in terminal(engine), "the Smake pair ending")
    finally:
        await engine.stop()
    assert smake.cancels == 1 and smake.created == []
    [ended] = terminal(engine)[Vendor.SMAKE]
    assert (ended.status, ended.vendor_order_ref) == (VendorStatus.CANCELLED, "smake-7")
