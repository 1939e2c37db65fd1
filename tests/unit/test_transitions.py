"""The transition engine's rules (see the module docstring of orderflow.consumer.transitions):
from what a vendor said, or failed to say, to the events to announce and the job's next state."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiokafka.errors import KafkaTimeoutError
from testkit import FIXTURES

from orderflow.adapters.errors import (
    NotProvenAbsent,
    VendorError,
    VendorRejected,
    VendorThrottled,
    VendorUnavailable,
)
from orderflow.adapters.outcomes import LinePrintFiles, Observation, PrintFileRef, ShipmentSeen
from orderflow.config.settings import PollSettings
from orderflow.consumer.jobs import Job, Phase
from orderflow.consumer.tracking_record import decode_job, encode_job
from orderflow.consumer.transitions import (
    OutputEvent,
    Step,
    VendorSignal,
    after_call,
    deadline,
    observed,
    past_deadline,
    rejected,
    retry_later,
    timed_out,
    tracking_observed,
    upstream_moved,
)
from orderflow.contracts.events import (
    OrderCreated,
    OrderPrintFilesReady,
    OrderShipmentTracking,
    OrderVendorStatus,
    Vendor,
    VendorStatus,
    print_files_event_id,
    shipment_tracking_event_id,
    status_event_id,
)

EVENT = OrderCreated.model_validate_json((FIXTURES / "order-created.json").read_text())
POLL = PollSettings(initial_interval_s=5.0, max_interval_s=300.0, deadline_s=3600.0)
T0 = 1_800_000_000.0

SUBMITTED, IN_PROGRESS, COMPLETED = VendorStatus.SUBMITTED, VendorStatus.IN_PROGRESS, VendorStatus.COMPLETED


def new_job(vendor: Vendor) -> Job:
    return Job(order_id=EVENT.order.order_id, vendor=vendor, partition=2,
               source_event_id=EVENT.event_id, order=EVENT.order, created_at=T0, due_at=T0)


def rng() -> random.Random:
    return random.Random(11)


def statuses(step: Step) -> list[tuple[str, str | None]]:
    """(status, vendor_state) of each status event, and ("print_files", line_id) of the others."""
    out: list[tuple[str, str | None]] = []
    for event in step.events:
        if isinstance(event, OrderVendorStatus):
            out.append((event.status.value, event.vendor_state))
        elif isinstance(event, OrderPrintFilesReady):
            out.append(("print_files", event.line_id))
        else:
            out.append(("shipment_tracking", None))
    return out


def run(job: Job, observations: Sequence[Observation], start: float = T0,
        every: float = 10.0) -> tuple[list[OutputEvent], Job]:
    """Feed observations one after another, as the scheduler would."""
    events: list[OutputEvent] = []
    now = start
    for obs in observations:
        step = observed(job, obs, now, POLL, rng())
        events.extend(step.events)
        job = step.job
        now += every
    return events, job


def check_status_event(event: OutputEvent, job: Job, status: VendorStatus, now: float) -> OrderVendorStatus:
    assert isinstance(event, OrderVendorStatus)
    assert event.status is status and event.terminal is status.terminal
    assert event.order_id == job.order_id and event.vendor is job.vendor
    assert event.source_event_id == EVENT.event_id
    assert event.occurred_at == datetime.fromtimestamp(now, UTC)
    assert event.event_id == status_event_id(job.order_id, job.vendor, status, event.vendor_state)
    return event


# ----------------------------------------------------------------------------- submitted first


def test_reevoo_202_is_submitted_then_completed_in_one_step() -> None:
    job = new_job(Vendor.REEVOO)
    step = observed(job, Observation(COMPLETED, "3f1c-uuid", "accepted"), T0, POLL, rng())
    assert statuses(step) == [("submitted", "accepted"), ("completed", "accepted")]
    submitted = check_status_event(step.events[0], job, SUBMITTED, T0)
    completed = check_status_event(step.events[1], job, COMPLETED, T0)
    assert submitted.vendor_order_ref == completed.vendor_order_ref == "3f1c-uuid"
    assert step.job.phase is Phase.DONE and step.job.status is COMPLETED
    assert step.job.order_json is None and step.job.finished_at == T0
    assert step.job.vendor_order_ref == "3f1c-uuid"


def test_smake_adopting_an_order_in_production_is_submitted_then_in_progress() -> None:
    job = new_job(Vendor.SMAKE)
    step = observed(job, Observation(IN_PROGRESS, "137", "preparing"), T0, POLL, rng())
    assert statuses(step) == [("submitted", "preparing"), ("in_progress", "preparing")]
    check_status_event(step.events[1], job, IN_PROGRESS, T0)
    assert step.job.phase is Phase.POLL
    assert step.job.status is IN_PROGRESS
    assert (step.job.vendor_state, step.job.vendor_order_ref) == ("preparing", "137")


def test_a_vendor_accepting_the_order_is_one_submitted_event() -> None:
    job = new_job(Vendor.SMAKE)
    step = observed(job, Observation(SUBMITTED, "137", "draft"), T0, POLL, rng())
    assert statuses(step) == [("submitted", "draft")]
    assert step.job.phase is Phase.POLL and step.job.status is SUBMITTED
    assert T0 + 0.9 * 5.0 <= step.job.due_at <= T0 + 1.1 * 5.0


# ----------------------------------------------------------------------------- smake's states


def test_smake_in_progress_once_per_new_state_and_nothing_when_nothing_changed() -> None:
    events, job = run(new_job(Vendor.SMAKE), [
        Observation(SUBMITTED, "137", "draft"),
        Observation(SUBMITTED, "137", "draft"),
        Observation(IN_PROGRESS, "137", "checking"),
        Observation(IN_PROGRESS, "137", "checking"),
        Observation(IN_PROGRESS, "137", "preparing"),
        Observation(IN_PROGRESS, "137", "prepared"),
        Observation(IN_PROGRESS, "137", "prepared"),
        Observation(COMPLETED, "137", "completed", tracking_numbers=("1Z999", "1Z998")),
    ])
    assert [(e.status.value, e.vendor_state) for e in events if isinstance(e, OrderVendorStatus)] == [
        ("submitted", "draft"), ("in_progress", "checking"), ("in_progress", "preparing"),
        ("in_progress", "prepared"), ("completed", "completed"),
    ]
    last = events[-1]
    assert isinstance(last, OrderVendorStatus) and last.terminal
    assert last.tracking_numbers == ["1Z999", "1Z998"]
    assert len({e.event_id for e in events}) == len(events)
    assert job.phase is Phase.DONE


def test_no_change_backs_off_and_a_change_polls_soon_again() -> None:
    job = observed(new_job(Vendor.SMAKE), Observation(SUBMITTED, "137", "draft"), T0, POLL, rng()).job
    nominal = []
    now = T0
    for _ in range(4):
        now = job.due_at
        step = observed(job, Observation(SUBMITTED, "137", "draft"), now, POLL, rng())
        assert step.events == ()
        job = step.job
        nominal.append((job.due_at - now, job.polls_without_change))
    assert [polls for _, polls in nominal] == [1, 2, 3, 4]
    for wait, polls in nominal:
        assert 0.9 * 5.0 * 2 ** polls <= wait <= 1.1 * 5.0 * 2 ** polls
    step = observed(job, Observation(IN_PROGRESS, "137", "checking"), now, POLL, rng())
    assert step.job.polls_without_change == 0
    assert step.job.due_at - now <= 1.1 * 5.0


def test_smake_failed_ends_the_pair_with_the_reason() -> None:
    events, job = run(new_job(Vendor.SMAKE), [
        Observation(SUBMITTED, "137", "draft"),
        Observation(VendorStatus.FAILED, "137", "failed", reason="Artwork resolution too low"),
    ])
    failed = events[-1]
    assert isinstance(failed, OrderVendorStatus)
    assert (failed.status, failed.terminal) == (VendorStatus.FAILED, True)
    assert failed.reason == "Artwork resolution too low"
    assert job.phase is Phase.DONE and job.status is VendorStatus.FAILED
    # Kept in its record: `orderflow retry` re-opens the pair from it.
    assert job.order_json is not None


def test_smake_cancelled_first_thing_after_adoption_still_starts_with_submitted() -> None:
    step = observed(new_job(Vendor.SMAKE), Observation(VendorStatus.CANCELLED, "137", "cancelled"),
                    T0, POLL, rng())
    assert statuses(step) == [("submitted", "cancelled"), ("cancelled", "cancelled")]


# ----------------------------------------------------------------------------- zakeke's print files


def line_files(line_id: str, design_id: str) -> LinePrintFiles:
    return LinePrintFiles(line_id=line_id, design_id=design_id, modification_id=None,
                          zip_url=f"https://files.test/{design_id}.zip",
                          files=(PrintFileRef("PDF", f"https://files.test/{design_id}.pdf"),
                                 PrintFileRef("PNG", f"https://files.test/{design_id}.png")))


def test_zakeke_print_files_events_come_before_completed() -> None:
    job = observed(new_job(Vendor.ZAKEKE), Observation(SUBMITTED), T0, POLL, rng()).job
    pending = observed(job, Observation(SUBMITTED, "Z-77", "INPROCESS"), T0 + 5, POLL, rng())
    assert pending.events == ()
    assert pending.job.vendor_order_ref == "Z-77", "the vendor's reference is kept as soon as known"
    ready = Observation(COMPLETED, "Z-77", "READY",
                        print_files=(line_files("L1", "000-pLheeWxP125a8axD07QthB"), line_files("L9", "d-9")))
    step = observed(pending.job, ready, T0 + 60, POLL, rng())
    assert statuses(step) == [("print_files", "L1"), ("print_files", "L9"), ("completed", "READY")]
    first = step.events[0]
    assert isinstance(first, OrderPrintFilesReady)
    assert first.event_id == print_files_event_id(job.order_id, "L1")
    assert first.design_id == "000-pLheeWxP125a8axD07QthB" and first.vendor is Vendor.ZAKEKE
    assert first.zip_url == "https://files.test/000-pLheeWxP125a8axD07QthB.zip"
    assert [(f.format, f.url) for f in first.files] == [
        ("PDF", "https://files.test/000-pLheeWxP125a8axD07QthB.pdf"),
        ("PNG", "https://files.test/000-pLheeWxP125a8axD07QthB.png")]
    assert first.source_event_id == EVENT.event_id
    assert first.occurred_at == datetime.fromtimestamp(T0 + 60, UTC)
    check_status_event(step.events[-1], job, COMPLETED, T0 + 60)
    assert step.job.phase is Phase.DONE


# ----------------------------------------------------------------------------- rejected


def test_rejected_before_acceptance_is_the_only_event_and_carries_the_reason() -> None:
    job = new_job(Vendor.SMAKE)
    step = rejected(job, "order has Smake lines but no shipping_address", T0)
    assert statuses(step) == [("rejected", None)]
    event = check_status_event(step.events[0], job, VendorStatus.REJECTED, T0)
    assert event.reason == "order has Smake lines but no shipping_address"
    assert step.job.phase is Phase.DONE and step.job.status is VendorStatus.REJECTED
    # Kept for `orderflow retry`, which re-opens a rejected pair from its record.
    assert step.job.order_json is not None and step.job.finished_at == T0


def test_a_rejected_observation_has_no_submitted_before_it() -> None:
    refused = Observation(VendorStatus.REJECTED, reason="Invalid TRKREF supplied")
    step = observed(new_job(Vendor.REEVOO), refused, T0, POLL, rng())
    assert statuses(step) == [("rejected", None)]
    assert step.job.phase is Phase.DONE


def test_rejected_after_submitted_keeps_the_vendor_reference() -> None:
    job = observed(new_job(Vendor.ZAKEKE), Observation(SUBMITTED, "Z-1"), T0, POLL, rng()).job
    step = rejected(job, "422: bad design", T0 + 5)
    event = step.events[0]
    assert isinstance(event, OrderVendorStatus) and event.vendor_order_ref == "Z-1"


# ----------------------------------------------------------------------------- retries and the deadline


def test_retry_later_backs_off_with_full_jitter_and_no_event() -> None:
    job = new_job(Vendor.SMAKE)
    for attempt in range(1, 6):
        step = retry_later(job, T0, POLL, rng())
        assert step.events == ()
        assert step.job.attempts == attempt
        assert T0 <= step.job.due_at <= T0 + min(300.0, 5.0 * 2 ** (attempt - 1))
        job = step.job
    assert job.phase is Phase.SUBMIT and job.status is None


def test_retry_later_honours_retry_after() -> None:
    step = retry_later(new_job(Vendor.SMAKE), T0, POLL, rng(), retry_after_s=120.0)
    assert step.job.due_at == T0 + 120.0


def test_retry_later_never_schedules_past_the_deadline() -> None:
    job = new_job(Vendor.SMAKE)
    now = deadline(job, POLL) - 10.0
    assert retry_later(job, now, POLL, rng(), retry_after_s=900.0).job.due_at == deadline(job, POLL)
    worn = replace(job, attempts=30)
    generator = rng()
    for _ in range(200):
        assert retry_later(worn, now, POLL, generator).job.due_at <= deadline(job, POLL)


def test_polling_never_schedules_past_the_deadline() -> None:
    job = observed(new_job(Vendor.SMAKE), Observation(SUBMITTED, "137", "draft"), T0, POLL, rng()).job
    job = replace(job, polls_without_change=10)
    now = deadline(job, POLL) - 1.0
    step = observed(job, Observation(SUBMITTED, "137", "draft"), now, POLL, rng())
    assert step.job.due_at == deadline(job, POLL)


def test_an_observation_resets_the_transient_failure_count() -> None:
    job = replace(new_job(Vendor.SMAKE), attempts=4)
    assert observed(job, Observation(SUBMITTED, "137", "draft"), T0, POLL, rng()).job.attempts == 0


def test_the_deadline_counts_from_the_jobs_creation() -> None:
    job = new_job(Vendor.SMAKE)
    assert deadline(job, POLL) == T0 + 3600.0
    assert not past_deadline(job, T0 + 3599.9, POLL)
    assert past_deadline(job, T0 + 3600.0, POLL)


def test_timed_out_ends_the_pair_keeping_what_is_known() -> None:
    _, job = run(new_job(Vendor.SMAKE), [Observation(SUBMITTED, "137", "draft"),
                                         Observation(IN_PROGRESS, "137", "checking")])
    now = deadline(job, POLL)
    step = timed_out(job, now)
    assert statuses(step) == [("timed_out", "checking")]
    event = check_status_event(step.events[0], job, VendorStatus.TIMED_OUT, now)
    assert event.reason and event.vendor_order_ref == "137"
    assert step.job.phase is Phase.DONE and step.job.status is VendorStatus.TIMED_OUT
    assert step.job.order_json is not None  # for `orderflow retry`


def test_timed_out_can_say_why_the_pair_ended_early() -> None:
    job = new_job(Vendor.SMAKE)
    step = timed_out(job, T0, reason="the job's order could not be read")
    assert statuses(step) == [("timed_out", None)]
    assert isinstance(step.events[0], OrderVendorStatus)
    assert step.events[0].reason == "the job's order could not be read"


# ----------------------------------------------------------------------------- ids


SMAKE_STORY = [
    Observation(SUBMITTED, "137", "draft"),
    Observation(IN_PROGRESS, "137", "checking"),
    Observation(IN_PROGRESS, "137", "preparing"),
    Observation(COMPLETED, "137", "completed"),
]


def test_event_ids_are_the_same_when_the_story_repeats() -> None:
    """After a crash the same transitions are replayed at other times: same ids, so
    consumers drop the repeats."""
    first, _ = run(new_job(Vendor.SMAKE), SMAKE_STORY, start=T0)
    again, _ = run(new_job(Vendor.SMAKE), SMAKE_STORY, start=T0 + 5000, every=33.0)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert [e.occurred_at for e in first] != [e.occurred_at for e in again]


def test_replaying_one_step_from_the_same_state_gives_the_same_events() -> None:
    _, job = run(new_job(Vendor.SMAKE), SMAKE_STORY[:2])
    once = observed(job, SMAKE_STORY[2], T0 + 100, POLL, rng())
    twice = observed(job, SMAKE_STORY[2], T0 + 900, POLL, rng())
    assert [e.event_id for e in once.events] == [e.event_id for e in twice.events]


@pytest.mark.parametrize("ending", ["completed", "failed", "timed_out", "rejected"])
def test_every_ending_of_a_pair_has_the_one_terminal_id(ending: str) -> None:
    _, job = run(new_job(Vendor.SMAKE), SMAKE_STORY[:2])
    if ending == "completed":
        step = observed(job, Observation(COMPLETED, "137", "completed"), T0 + 50, POLL, rng())
    elif ending == "failed":
        failed = Observation(VendorStatus.FAILED, "137", "failed", reason="x")
        step = observed(job, failed, T0 + 50, POLL, rng())
    elif ending == "timed_out":
        step = timed_out(job, T0 + 50)
    else:
        step = rejected(job, "x", T0 + 50)
    terminal = [e for e in step.events if isinstance(e, OrderVendorStatus) and e.terminal]
    assert len(terminal) == 1
    assert terminal[0].event_id == status_event_id(job.order_id, Vendor.SMAKE, COMPLETED, None)


def test_steps_leave_the_given_job_untouched() -> None:
    job = new_job(Vendor.SMAKE)
    before = replace(job)
    observed(job, Observation(IN_PROGRESS, "137", "checking"), T0, POLL, rng())
    retry_later(job, T0, POLL, rng())
    rejected(job, "x", T0)
    timed_out(job, T0)
    assert job == before and job.order_json == before.order_json is not None
    assert job.read_order() == EVENT.order


# ----------------------------------------------------------------------------- tracking numbers


def smake_completed(*numbers: str, parcels: int | None = None) -> Observation:
    """Smake's completed order with `parcels` shipments (as many as numbers unless said),
    the first ones with `numbers`."""
    parcels = len(numbers) if parcels is None else parcels
    shipments = tuple(ShipmentSeen(numbers[i] if i < len(numbers) else None, "dhl", "DHL",
                                   f"2026-12-0{i + 1}T10:00:00Z") for i in range(parcels))
    return Observation(COMPLETED, vendor_order_ref="137", vendor_state="completed",
                       tracking_numbers=numbers, shipments=shipments,
                       tracking_expected=not shipments or len(numbers) < parcels)


def completed_without_numbers() -> Job:
    in_production = replace(new_job(Vendor.SMAKE), phase=Phase.POLL, status=IN_PROGRESS,
                            vendor_order_ref="137", vendor_state="prepared")
    step = observed(in_production, smake_completed(), T0 + 100, POLL, rng())
    assert [(e.status, e.terminal) for e in step.events if isinstance(e, OrderVendorStatus)] == [
        (COMPLETED, True)]
    return step.job


def test_completed_without_tracking_numbers_is_announced_then_looked_at_slowly() -> None:
    job = completed_without_numbers()
    assert (job.phase, job.status, job.finished_at) == (Phase.TRACKING, COMPLETED, T0 + 100)
    assert job.due_at == T0 + 100 + POLL.tracking_interval_s
    assert job.order_json is not None  # still followed


def test_tracking_numbers_that_appear_later_are_one_shipment_tracking_event() -> None:
    job = completed_without_numbers()
    nothing_yet = tracking_observed(job, smake_completed(), T0 + 4000, POLL)
    assert nothing_yet.events == () and nothing_yet.job.phase is Phase.TRACKING
    found = tracking_observed(nothing_yet.job, smake_completed("TRK2", "TRK1"), T0 + 8000, POLL)
    (event,) = found.events
    assert isinstance(event, OrderShipmentTracking)
    assert event.event_type == "order.shipment_tracking" and event.tracking_numbers == ["TRK2", "TRK1"]
    assert (event.order_id, event.vendor, event.vendor_order_ref) == (job.order_id, Vendor.SMAKE, "137")
    assert event.event_id == shipment_tracking_event_id(job.order_id, Vendor.SMAKE, ["TRK1", "TRK2"])
    assert found.job.phase is Phase.DONE and found.job.status is COMPLETED


def test_every_parcel_is_announced_as_its_number_comes_with_its_carrier() -> None:
    """Contract: "each new set of numbers is one more `order.shipment_tracking` (until every
    shipment has a number, or the tracking deadline)", with `shipments[]` (number, carrier
    handle and title, time); each event carries the full set known so far."""
    in_production = replace(new_job(Vendor.SMAKE), phase=Phase.POLL, status=IN_PROGRESS,
                            vendor_order_ref="137")
    first = observed(in_production, smake_completed("TRK1", parcels=2), T0, POLL, rng())
    assert first.job.phase is Phase.TRACKING, "a second parcel still has no number"
    same = tracking_observed(first.job, smake_completed("TRK1", parcels=2), T0 + 10, POLL)
    assert same.events == () and same.job.phase is Phase.TRACKING
    second = tracking_observed(same.job, smake_completed("TRK1", "TRK2"), T0 + 20, POLL)
    (event,) = second.events
    assert isinstance(event, OrderShipmentTracking) and event.tracking_numbers == ["TRK1", "TRK2"]
    assert event.shipments is not None
    assert [(s.tracking_number, s.carrier_handle, s.carrier_title) for s in event.shipments] == [
        ("TRK1", "dhl", "DHL"), ("TRK2", "dhl", "DHL")]
    assert second.job.phase is Phase.DONE, "every shipment has its number"
    assert decode_job(encode_job(same.job), partition=2).announced_numbers == ("TRK1",)


def test_tracking_numbers_known_at_completion_need_no_second_event() -> None:
    in_production = replace(new_job(Vendor.SMAKE), phase=Phase.POLL, status=IN_PROGRESS)
    step = observed(in_production, smake_completed("TRK1"), T0, POLL, rng())
    assert step.job.phase is Phase.DONE
    completed = [e for e in step.events if isinstance(e, OrderVendorStatus) and e.terminal]
    assert completed[0].tracking_numbers == ["TRK1"]


def test_looking_for_tracking_numbers_ends_quietly_at_its_deadline() -> None:
    job = completed_without_numbers()
    end = deadline(job, POLL)
    assert end == T0 + 100 + POLL.tracking_deadline_s
    assert past_deadline(job, end, POLL) and not past_deadline(job, end - 1, POLL)
    late = tracking_observed(job, smake_completed(), end, POLL)
    assert late.events == () and late.job.phase is Phase.DONE


def test_no_tracking_phase_when_it_is_switched_off() -> None:
    off = POLL.model_copy(update={"tracking_deadline_s": 0})
    in_production = replace(new_job(Vendor.SMAKE), phase=Phase.POLL, status=IN_PROGRESS)
    assert observed(in_production, smake_completed(), T0, off, rng()).job.phase is Phase.DONE


# ----------------------------------------------------------------------------- after a call


def submitting() -> Job:
    return replace(new_job(Vendor.SMAKE), intent_at=T0 + 1)


def test_after_an_answer_the_vendors_word_moves_the_pair() -> None:
    decision = after_call(submitting(), Observation(SUBMITTED, vendor_order_ref="9"), T0, POLL,
                          rng(), intent_before=None)
    assert decision.signal is VendorSignal.ANSWERED
    assert decision.step.job.phase is Phase.POLL and decision.step.job.vendor_order_ref == "9"


@pytest.mark.parametrize("error", [
    VendorRejected(Vendor.SMAKE, "create_order", "street too long", 422),
    VendorError(Vendor.SMAKE, "create_order", "a refusal of another kind"),  # not retriable
])
def test_an_error_that_says_trying_again_cannot_help_rejects_a_submit(error: VendorError) -> None:
    decision = after_call(submitting(), error, T0, POLL, rng(), intent_before=None)
    assert decision.step.job.status is VendorStatus.REJECTED
    (event,) = decision.step.events
    assert isinstance(event, OrderVendorStatus) and event.reason == error.message
    assert decision.signal is VendorSignal.ANSWERED


def test_a_refused_poll_is_no_verdict_on_the_order_and_is_tried_again() -> None:
    polling = replace(new_job(Vendor.SMAKE), phase=Phase.POLL, status=SUBMITTED)
    decision = after_call(polling, VendorRejected(Vendor.SMAKE, "get_order", "gone", 410), T0,
                          POLL, rng(), intent_before=None)
    assert decision.step.events == () and decision.step.job.attempts == 1


def test_a_throttle_holds_the_vendor_back_for_its_retry_after() -> None:
    throttled = VendorThrottled(Vendor.SMAKE, "get_order", "slow down", 429, retry_after=7.0)
    decision = after_call(submitting(), throttled, T0, POLL, rng(), intent_before=None)
    assert (decision.signal, decision.retry_after_s) == (VendorSignal.THROTTLED, 7.0)
    assert decision.step.job.due_at >= T0 + 7.0


def test_a_vendor_failure_counts_against_the_vendor_but_waiting_for_proof_does_not() -> None:
    down = after_call(submitting(), VendorUnavailable(Vendor.SMAKE, "create_order", "503", 503),
                      T0, POLL, rng(), intent_before=None)
    waiting = after_call(submitting(), NotProvenAbsent(Vendor.ZAKEKE, "get_order", "lag", 404),
                         T0, POLL, rng(), intent_before=None)
    assert (down.signal, waiting.signal) == (VendorSignal.FAILING, VendorSignal.ANSWERED)


def test_a_create_known_never_to_have_acted_gives_back_the_intent_in_hand() -> None:
    refused = VendorThrottled(Vendor.SMAKE, "create_order", "slow down", 429)
    refused.nothing_created = True
    decision = after_call(submitting(), refused, T0, POLL, rng(), intent_before=None)
    assert decision.step.job.intent_at is None
    lost = VendorUnavailable(Vendor.SMAKE, "create_order", "timed out")
    assert after_call(submitting(), lost, T0, POLL, rng(), intent_before=None).step.job.intent_at == T0 + 1


@pytest.mark.parametrize("error", [KafkaTimeoutError(), RuntimeError("a bug")])
def test_what_is_not_the_vendors_doing_is_tried_again_saying_nothing_of_it(error: Exception) -> None:
    decision = after_call(submitting(), error, T0, POLL, rng(), intent_before=None)
    assert decision.signal is VendorSignal.NONE
    assert decision.step.events == () and decision.step.job.attempts == 1


# ----------------------------------------------------------------------------- pairs that wait


def waiting_reevoo() -> Job:
    return replace(new_job(Vendor.REEVOO), phase=Phase.WAIT, waits_for=Vendor.SMAKE)


def test_a_waiting_pair_starts_once_the_pair_it_waits_for_completed() -> None:
    """Contract, "One order, one flow": with submit_on=fulfilled the order goes to Reevoo once
    its Smake pair completed, with fulfilment_date the day it completed."""
    smake = replace(new_job(Vendor.SMAKE), phase=Phase.TRACKING, status=COMPLETED,
                    finished_at=T0 + 86_400)
    step = upstream_moved(waiting_reevoo(), smake, T0 + 90_000)
    assert step is not None and step.events == ()
    released = step.job
    assert (released.phase, released.waits_for) == (Phase.SUBMIT, None)
    assert released.fulfilled_at == T0 + 86_400
    assert released.due_at == T0 + 90_000
    assert deadline(released, POLL) == T0 + 90_000 + POLL.deadline_s, "its deadline counts from now"


@pytest.mark.parametrize("status", [VendorStatus.FAILED, VendorStatus.CANCELLED,
                                    VendorStatus.REJECTED, VendorStatus.TIMED_OUT])
def test_a_waiting_pair_ends_cancelled_when_the_order_is_never_fulfilled(status: VendorStatus) -> None:
    """Contract: "if the Smake pair ends any other way, the Reevoo pair ends `cancelled`
    (reason: the order was never fulfilled) and Reevoo is never called"."""
    smake = replace(new_job(Vendor.SMAKE), phase=Phase.DONE, status=status, finished_at=T0 + 60)
    step = upstream_moved(waiting_reevoo(), smake, T0 + 61)
    assert step is not None
    [event] = step.events
    assert isinstance(event, OrderVendorStatus)
    assert (event.status, event.terminal, event.vendor) == (VendorStatus.CANCELLED, True, Vendor.REEVOO)
    assert event.reason == f"the order was never fulfilled: its Smake pair ended {status}"
    assert (step.job.phase, step.job.status, step.job.waits_for) == (
        Phase.DONE, VendorStatus.CANCELLED, None)


def test_a_waiting_pair_keeps_waiting_while_the_other_is_under_way() -> None:
    for smake in (new_job(Vendor.SMAKE),
                  replace(new_job(Vendor.SMAKE), phase=Phase.POLL, status=IN_PROGRESS)):
        assert upstream_moved(waiting_reevoo(), smake, T0) is None
    done_zakeke = replace(new_job(Vendor.ZAKEKE), phase=Phase.DONE, status=VendorStatus.FAILED)
    assert upstream_moved(waiting_reevoo(), done_zakeke, T0) is None, "not the pair it waits for"
    assert upstream_moved(new_job(Vendor.REEVOO), done_zakeke, T0) is None, "not waiting"


def test_timed_out_carries_the_vendors_last_error_message() -> None:
    """Contract: "No terminal state within the polling deadline is `timed_out`, with the
    vendor's last error message (if any) in `reason`"."""
    job = new_job(Vendor.ZAKEKE)
    failing = after_call(job, VendorUnavailable(Vendor.ZAKEKE, "get_order", "Service Unavailable", 503),
                         T0, POLL, rng(), intent_before=None).step.job
    [event] = timed_out(failing, T0 + 4_000).events
    assert isinstance(event, OrderVendorStatus) and event.reason == (
        "no terminal state from the vendor within the polling deadline; "
        "the vendor's last error: Service Unavailable")
    [quiet] = timed_out(job, T0 + 4_000).events
    assert isinstance(quiet, OrderVendorStatus)
    assert quiet.reason == "no terminal state from the vendor within the polling deadline"
