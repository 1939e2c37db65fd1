"""How a job moves: from what a vendor said (or failed to say) to the events to announce and
the job's next state. Pure logic, no I/O; the runner performs the result.

Rules (contract "order.vendor_status"):
- `submitted` comes first whenever the vendor accepted the order, even when the first thing
  we learn is already further along (Reevoo's 202 ends the pair at once).
- A new event when the status changes, or while `in_progress` when the vendor's state word
  is new (Smake's checking, preparing, prepared).
- A terminal status ends the pair; no terminal status before the deadline is `timed_out`.
- A pair completed without the tracking numbers its vendor adds later (Smake) is looked at
  slowly until they come (`order.shipment_tracking`, once) or the tracking deadline passes;
  its one terminal status is the `completed` already announced.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from orderflow.adapters.errors import VendorError
from orderflow.adapters.outcomes import CancelledItemSeen, CreateNotAllowed, Observation
from orderflow.config.settings import PollSettings
from orderflow.consumer.backoff import poll_interval, retry_delay
from orderflow.consumer.jobs import Job, Phase
from orderflow.contracts.control import Cancel
from orderflow.contracts.events import (
    CancelledItem,
    Order,
    OrderCancellationRefused,
    OrderPrintFilesReady,
    OrderShipmentTracking,
    OrderVendorStatus,
    PrintFile,
    Shipment,
    Vendor,
    VendorStatus,
    cancellation_refused_event_id,
    print_files_event_id,
    shipment_tracking_event_id,
    status_event_id,
)

OutputEvent = (OrderVendorStatus | OrderPrintFilesReady | OrderShipmentTracking
               | OrderCancellationRefused)


@dataclass(frozen=True, slots=True)
class Step:
    """What running a job produced: events to publish first, then the job's new state."""

    events: tuple[OutputEvent, ...]
    job: Job


class VendorSignal(StrEnum):
    """What a call's outcome says about the vendor as a whole (its lane's backoff)."""

    ANSWERED = "answered"    # it is up
    THROTTLED = "throttled"  # it asks us to wait (Retry-After)
    FAILING = "failing"      # it failed (5xx, timeout, ...): several in a row hold it back
    NONE = "none"            # the outcome says nothing about the vendor


@dataclass(frozen=True, slots=True)
class Decision:
    """The one decision after a vendor call: the job's step, and the vendor's signal."""

    step: Step
    signal: VendorSignal
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """A due job needs its vendor called, with its order built for this run only (None for
    a followed pair that keeps nothing of it)."""

    order: Order | None


# Why a job ends without a call when its order cannot be read.
UNREADABLE_ORDER = "the job's order could not be read"


def before_call(job: Job, now: float, poll: PollSettings) -> Step | Call:
    """What a due job needs: to end now (its deadline passed; its order does not validate,
    as a record from an older release whose order the current model refuses), or a call.

    The order as a model lives for one run only: the job holds it as JSON (once the vendor
    accepted it, only what polls read, or nothing)."""
    if past_deadline(job, now, poll):
        return tracking_given_up(job, now) if job.phase is Phase.TRACKING else timed_out(job, now)
    if job.order_view and job.order_json is None and job.phase is not Phase.SUBMIT:
        return Call(None)
    try:
        return Call(job.read_order())
    except ValueError:
        return timed_out(job, now, reason=UNREADABLE_ORDER)


def after_call(job: Job, outcome: Observation | Exception, now: float, poll: PollSettings,
               rng: random.Random, *, intent_before: float | None) -> Decision:
    """What follows a call to the vendor, from what it answered or the error it ended with.
    Branches on the error's behaviour (`retriable`, `throttles`, `vendor_failing`,
    `nothing_created`), never on its class ladder.

    - An answer: the vendor's word moves the pair (`observed`, or `tracking_observed`).
    - A refusal (not retriable): on submit the pair ends `rejected` with the vendor's words;
      while following an accepted order it is no verdict on the order, so it is tried again
      until the deadline.
    - A transient error: tried again with backoff (the vendor's Retry-After honoured). A
      create known never to have acted gives back the intent in hand, so the next submit
      need not wait for proof (the recorded intent stays: after a restart the vendor is
      asked first, which is merely careful).
    - The engine refused the create (`CreateNotAllowed`): the pair ends rejected.
    - Anything else (the intent could not be recorded, a bug): tried again; not the
      vendor's doing. `intent_before` is the job's intent before this run."""
    if job.cancelling:
        cancel_answered = _cancel_answered(job, outcome, now, poll, rng)
        if cancel_answered is not None:
            return cancel_answered
    if isinstance(outcome, Observation):
        if job.phase is Phase.TRACKING:
            return Decision(tracking_observed(job, outcome, now, poll), VendorSignal.ANSWERED)
        step = observed(job, outcome, now, poll, rng)
        if (job.cancel_id is not None and job.phase is Phase.SUBMIT
                and step.job.phase is Phase.POLL and job.vendor is Vendor.SMAKE):
            # Cancelled while its create may have happened: the order Smake turned out to
            # hold is cancelled now.
            step = Step(step.events, replace(step.job, cancelling=True, due_at=now))
        return Decision(step, VendorSignal.ANSWERED)
    if isinstance(outcome, CreateNotAllowed) and job.cancel_id is not None:
        return Decision(cancelled(job, now), VendorSignal.NONE)
    if isinstance(outcome, VendorError):
        if not outcome.retriable:
            if job.phase is Phase.SUBMIT:
                return Decision(rejected(job, outcome.message, now), VendorSignal.ANSWERED)
            return Decision(retry_later(job, now, poll, rng, error=outcome.message),
                            VendorSignal.ANSWERED)
        step = retry_later(job, now, poll, rng, outcome.retry_after, error=outcome.message)
        if outcome.nothing_created and job.phase is Phase.SUBMIT:
            step = Step(step.events, replace(step.job, intent_at=intent_before))
        signal = (VendorSignal.THROTTLED if outcome.throttles
                  else VendorSignal.FAILING if outcome.vendor_failing else VendorSignal.ANSWERED)
        return Decision(step, signal, outcome.retry_after)
    if isinstance(outcome, CreateNotAllowed):
        return Decision(rejected(job, str(outcome), now), VendorSignal.NONE)
    return Decision(retry_later(job, now, poll, rng), VendorSignal.NONE)


def _cancel_answered(job: Job, outcome: Observation | Exception, now: float,
                     poll: PollSettings, rng: random.Random) -> Decision | None:
    """The vendor's answer to the cancel call the pair owed (Smake's PUT .../cancel): the
    order cancelled ends the pair; a refusal, or the order in another state, is one
    `order.cancellation_refused` and the pair is followed to its real end; a transient
    failure is the caller's (tried again, still owed)."""
    if isinstance(outcome, Observation):
        if outcome.status is VendorStatus.CANCELLED:
            return Decision(cancelled(job, now, vendor_order_ref=outcome.vendor_order_ref),
                            VendorSignal.ANSWERED)
        refusal = cancellation_refused(job, f"{job.vendor} answered the cancel with the order "
                                            f"{outcome.vendor_state or outcome.status}", now)
        step = observed(replace(job, cancelling=False), outcome, now, poll, rng)
        return Decision(Step((refusal, *step.events), step.job), VendorSignal.ANSWERED)
    if isinstance(outcome, VendorError) and not outcome.retriable:
        refusal = cancellation_refused(job, outcome.message, now)
        return Decision(Step((refusal,), replace(job, cancelling=False, attempts=0, due_at=now)),
                        VendorSignal.ANSWERED)
    return None


def _timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def status_event(job: Job, status: VendorStatus, now: float, *, vendor_order_ref: str | None,
                 vendor_state: str | None, reason: str | None = None,
                 tracking_numbers: tuple[str, ...] = (),
                 cancelled_items: tuple[CancelledItemSeen, ...] = ()) -> OrderVendorStatus:
    return OrderVendorStatus(
        event_id=status_event_id(job.order_id, job.vendor, status, vendor_state, job.round),
        occurred_at=_timestamp(now),
        order_id=job.order_id,
        vendor=job.vendor,
        status=status,
        terminal=status.terminal,
        vendor_order_ref=vendor_order_ref,
        vendor_state=vendor_state,
        reason=reason,
        tracking_numbers=list(tracking_numbers),
        source_event_id=job.source_event_id,
        cancelled_items=[CancelledItem(vendor_item_ref=item.vendor_item_ref,
                                       variant_id=item.variant_id, quantity=item.quantity,
                                       cancelled_at=item.cancelled_at)
                         for item in cancelled_items] or None,
    )


def _finish(job: Job, now: float, **changes: Any) -> Job:
    """The job ended, with `changes` (one new Job: a step builds one, not several)."""
    # A pair that did not complete keeps its order: `orderflow retry` re-opens it from here.
    status = changes.get("status", job.status)
    keep = job.order_json if status is not VendorStatus.COMPLETED else None
    return replace(job, **{**changes, "phase": Phase.DONE, "order_json": keep,
                           "finished_at": now, "due_at": now, "attempts": 0})


def observed(job: Job, obs: Observation, now: float, poll: PollSettings, rng: random.Random) -> Step:
    """The vendor answered: announce what is new and decide when to look again."""
    events: list[OutputEvent] = []
    ref = obs.vendor_order_ref or job.vendor_order_ref
    accepted = obs.status is not VendorStatus.REJECTED
    if accepted and job.status is None and obs.status is not VendorStatus.SUBMITTED:
        events.append(status_event(job, VendorStatus.SUBMITTED, now, vendor_order_ref=ref,
                                   vendor_state=obs.vendor_state))
    changed = obs.status is not job.status or (
        obs.status is VendorStatus.IN_PROGRESS and obs.vendor_state != job.vendor_state
    )
    if changed:
        if obs.status is VendorStatus.COMPLETED:
            events.extend(print_files_events(job, obs, now))
        events.append(status_event(job, obs.status, now, vendor_order_ref=ref,
                                   vendor_state=obs.vendor_state, reason=obs.reason,
                                   tracking_numbers=obs.tracking_numbers,
                                   cancelled_items=obs.cancelled_items))
    # What the answer changes, applied once below (a step builds one new Job, not several).
    learnt: dict[str, Any] = {
        "status": job.status if not changed else obs.status,
        "vendor_order_ref": ref,
        "vendor_state": obs.vendor_state if changed or obs.vendor_state else job.vendor_state,
        "attempts": 0,
    }
    if obs.status.terminal:
        if (obs.status is VendorStatus.COMPLETED and obs.tracking_expected
                and poll.tracking_deadline_s > 0):
            # Announced as completed (with the numbers known so far); numbers of parcels
            # still to come are looked for until every shipment has one (the tracking
            # deadline counts from now, the completion).
            due = min(now + poll.tracking_interval_s, now + poll.tracking_deadline_s)
            return Step(tuple(events), replace(job, **learnt, phase=Phase.TRACKING,
                                               finished_at=now, polls_without_change=0,
                                               announced_numbers=obs.tracking_numbers,
                                               due_at=due))  # attempts: 0 in `learnt`
        return Step(tuple(events), _finish(job, now, **learnt))
    polls = 0 if changed or job.phase is Phase.SUBMIT else job.polls_without_change + 1
    due = now + poll_interval(polls, poll.initial_interval_s, poll.max_interval_s, rng)
    next_job = replace(job, **learnt, phase=Phase.POLL, polls_without_change=polls,
                       due_at=min(due, deadline(job, poll)))
    return Step(tuple(events), next_job)


# How a waiting pair ends when the pair it waits for ends without completing, and why.
_NOT_RELEASED: dict[tuple[Vendor, Vendor], tuple[VendorStatus, str]] = {
    (Vendor.REEVOO, Vendor.SMAKE): (
        VendorStatus.CANCELLED, "the order was never fulfilled: its Smake pair ended {status}"),
    (Vendor.SMAKE, Vendor.ZAKEKE): (
        VendorStatus.REJECTED,
        "the customer's artwork was never made: its Zakeke pair ended {status}"),
}
_NOT_RELEASED_OTHERWISE = (VendorStatus.REJECTED, "its {upstream} pair ended {status}")


def upstream_moved(waiting: Job, upstream: Job, now: float) -> Step | None:
    """What a pair waiting for `upstream` (another pair of its order) does now that the
    upstream is in this state: released once it completed (it starts now, its deadline
    counting from now, knowing when the order was fulfilled); ended once it ended any other
    way (contract, "One order, one flow"); else None: it keeps waiting."""
    if waiting.phase is not Phase.WAIT or waiting.waits_for is not upstream.vendor:
        return None
    if upstream.cancel_id is not None and upstream.status is not VendorStatus.COMPLETED:
        # The order was cancelled: that wins over "never fulfilled" and "never made".
        return cancelled(replace(waiting, cancel_id=upstream.cancel_id,
                                 cancel_reason=upstream.cancel_reason), now)
    if upstream.status is VendorStatus.COMPLETED:
        return Step((), replace(waiting, phase=Phase.SUBMIT, waits_for=None,
                                fulfilled_at=upstream.finished_at or now,
                                created_at=now, due_at=now))
    if upstream.phase is not Phase.DONE:
        return None
    status, why = _NOT_RELEASED.get((waiting.vendor, upstream.vendor), _NOT_RELEASED_OTHERWISE)
    reason = why.format(upstream=upstream.vendor, status=upstream.status or "without a status")
    event = status_event(waiting, status, now, vendor_order_ref=None, vendor_state=None,
                         reason=reason)
    return Step((event,), _finish(waiting, now, status=status, waits_for=None))


def print_files_events(job: Job, obs: Observation, now: float) -> list[OrderPrintFilesReady]:
    return [
        OrderPrintFilesReady(
            event_id=print_files_event_id(job.order_id, line.line_id),
            occurred_at=_timestamp(now),
            order_id=job.order_id,
            line_id=line.line_id,
            design_id=line.design_id,
            modification_id=line.modification_id,
            zip_url=line.zip_url,
            files=[PrintFile(format=f.format, url=f.url) for f in line.files],
            source_event_id=job.source_event_id,
        )
        for line in obs.print_files
    ]


def tracking_observed(job: Job, obs: Observation, now: float, poll: PollSettings) -> Step:
    """A completed pair waiting for tracking numbers was looked at: announce them once they
    are there (`order.shipment_tracking`; the terminal status stays the one announced), or
    look again later, until the tracking deadline."""
    events: tuple[OutputEvent, ...] = ()
    announced = job.announced_numbers
    if obs.tracking_numbers and set(obs.tracking_numbers) != set(job.announced_numbers):
        # A new set (a first parcel, or one more): announced whole, with the parcels' carriers.
        numbers = list(obs.tracking_numbers)
        shipped = [Shipment(tracking_number=s.tracking_number, carrier_handle=s.carrier_handle,
                            carrier_title=s.carrier_title, created_at=s.created_at)
                   for s in obs.shipments if s.tracking_number is not None]
        events = (OrderShipmentTracking(
            event_id=shipment_tracking_event_id(job.order_id, job.vendor, numbers),
            occurred_at=_timestamp(now),
            order_id=job.order_id,
            vendor=job.vendor,
            vendor_order_ref=obs.vendor_order_ref or job.vendor_order_ref,
            tracking_numbers=numbers,
            source_event_id=job.source_event_id,
            shipments=shipped or None,
        ),)
        announced = obs.tracking_numbers
    if not obs.tracking_expected or now >= deadline(job, poll):
        # Every shipment has its number (or the tracking deadline passed): nothing more to say.
        return Step(events, _finish(job, now, announced_numbers=announced))
    return Step(events, replace(job, attempts=0, announced_numbers=announced,
                                due_at=min(now + poll.tracking_interval_s, deadline(job, poll))))


def tracking_given_up(job: Job, now: float) -> Step:
    """No tracking numbers within the tracking deadline: stop looking. The pair's terminal
    status was announced long ago; nothing more is said."""
    return Step((), _finish(job, now))


def rejected(job: Job, reason: str, now: float) -> Step:
    """The vendor refused the order (or it cannot be sent at all): the pair ends here."""
    event = status_event(job, VendorStatus.REJECTED, now, vendor_order_ref=job.vendor_order_ref,
                         vendor_state=None, reason=reason)
    return Step((event,), _finish(job, now, status=VendorStatus.REJECTED))


def retry_later(job: Job, now: float, poll: PollSettings, rng: random.Random,
                retry_after_s: float | None = None, *, error: str | None = None) -> Step:
    """A transient failure: try again after a backoff, but never past the deadline. The
    vendor's message (`error`) is kept for the `timed_out` that may follow."""
    attempts = job.attempts + 1
    delay = retry_delay(attempts, poll.initial_interval_s, poll.max_interval_s, rng, retry_after_s)
    return Step((), replace(job, attempts=attempts, due_at=min(now + delay, deadline(job, poll)),
                            last_error=error[:500] if error else job.last_error))


def deadline(job: Job, poll: PollSettings) -> float:
    """Until when the job is run: the polling deadline from its creation, or, for a completed
    pair waiting for tracking numbers, the tracking deadline from its completion."""
    if job.phase is Phase.TRACKING:
        return (job.finished_at or job.created_at) + poll.tracking_deadline_s
    return job.created_at + poll.deadline_s


def past_deadline(job: Job, now: float, poll: PollSettings) -> bool:
    return now >= deadline(job, poll)


def timed_out(job: Job, now: float, reason: str | None = None) -> Step:
    """No terminal state by the deadline (contract: `timed_out`, "with the vendor's last
    error message (if any) in `reason`")."""
    if reason is None:
        reason = "no terminal state from the vendor within the polling deadline"
        if job.last_error:
            reason += f"; the vendor's last error: {job.last_error}"
    event = status_event(job, VendorStatus.TIMED_OUT, now, vendor_order_ref=job.vendor_order_ref,
                         vendor_state=job.vendor_state, reason=reason)
    return Step((event,), _finish(job, now, status=VendorStatus.TIMED_OUT))


# ----------------------------------------------------------------------------- cancellation

CANCELLED = "the order was cancelled"
ZAKEKE_KEEPS_IT = "the order stays registered at Zakeke, which has no way to withdraw one"
REEVOO_MAY_HAVE_IT = ("a request may have reached Reevoo before the cancellation, and Reevoo "
                      "has no way to withdraw one")
# Why a pair that completed is not cancelled (its one `order.cancellation_refused`).
REFUSED_AFTER_COMPLETION = {
    Vendor.SMAKE: "Smake already completed the order's production",
    Vendor.ZAKEKE: "Zakeke already made the order's print-ready files, and has no way to "
                   "withdraw an order",
    Vendor.REEVOO: "Reevoo already took the order (202), and has no way to withdraw one",
}


def cancel_requested(job: Job, cancel: Cancel, now: float) -> Step | None:
    """What the order's cancellation does to this pair now (contract, "order.cancelled");
    None: nothing (it was applied to the pair already, or the pair ended otherwise).

    - Never sent (waiting for another pair, or no create started): ends `cancelled`.
    - Smake, created or perhaps created: a cancel call is owed (`cancelling`), or, while
      its create may have happened, Smake is asked first and nothing is created (the
      runner refuses the create); the answer decides.
    - Zakeke (no cancel endpoint): following stops, `cancelled`; it keeps the order.
    - Reevoo with a create that may have reached it: `cancelled`, saying so.
    - Completed (or completed and waiting for tracking numbers): one refusal."""
    if job.cancel_id is not None:
        return None
    noted = replace(job, cancel_id=cancel.event_id, cancel_reason=cancel.reason)
    if job.status is VendorStatus.COMPLETED:
        return Step((cancellation_refused(noted, REFUSED_AFTER_COMPLETION[job.vendor], now),),
                    noted)
    if job.phase is Phase.DONE:
        return None
    sent = job.intent_at is not None or job.vendor_order_ref is not None
    if job.phase is Phase.WAIT or not sent:
        return cancelled(noted, now)
    if job.vendor is Vendor.SMAKE:
        return Step((), replace(noted, cancelling=job.phase is Phase.POLL, attempts=0,
                                due_at=now))
    if job.vendor is Vendor.ZAKEKE:
        return cancelled(noted, now, note=ZAKEKE_KEEPS_IT)
    return cancelled(noted, now, note=REEVOO_MAY_HAVE_IT)


def cancelled(job: Job, now: float, *, note: str | None = None,
              vendor_order_ref: str | None = None) -> Step:
    """The pair ends `cancelled` by its order's cancellation, with its reason."""
    reason = job.cancel_reason or CANCELLED
    if note:
        reason = f"{reason}; {note}"
    ref = vendor_order_ref or job.vendor_order_ref
    event = status_event(job, VendorStatus.CANCELLED, now, vendor_order_ref=ref,
                         vendor_state=None, reason=reason)
    return Step((event,), _finish(job, now, status=VendorStatus.CANCELLED, vendor_order_ref=ref,
                                  waits_for=None, cancelling=False))


def cancellation_refused(job: Job, reason: str, now: float) -> OrderCancellationRefused:
    assert job.cancel_id is not None
    return OrderCancellationRefused(
        event_id=cancellation_refused_event_id(job.order_id, job.vendor, job.cancel_id),
        occurred_at=_timestamp(now),
        order_id=job.order_id,
        vendor=job.vendor,
        vendor_order_ref=job.vendor_order_ref,
        reason=reason[:1000],
        source_event_id=job.cancel_id,
    )
