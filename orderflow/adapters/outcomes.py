"""What an adapter returns and what it is given: the protocol the engine calls, the outcome
types (an `Observation` of what the vendor says now), and the pair's state between calls.

Adapters never import the engine. They take an order and the pair's last known state, talk
to the vendor, and return an `Observation` or raise a `VendorError` (adapters/errors.py).
Deciding which events that means is the engine's job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from orderflow.contracts.events import Order, Vendor, VendorStatus, publishable


@dataclass(frozen=True, slots=True)
class PrintFileRef:
    format: str
    url: str


@dataclass(frozen=True, slots=True)
class LinePrintFiles:
    """The print-ready files Zakeke produced for one design line of the order."""

    line_id: str
    design_id: str
    modification_id: str | None
    zip_url: str | None
    files: tuple[PrintFileRef, ...]


@dataclass(frozen=True, slots=True)
class ShipmentSeen:
    """One of the vendor's shipments for a pair; its number may come later."""

    tracking_number: str | None
    carrier_handle: str | None = None
    carrier_title: str | None = None
    created_at: str | None = None


@dataclass(frozen=True, slots=True)
class CancelledItemSeen:
    """An item of the vendor's order that its producer cancelled."""

    vendor_item_ref: str
    variant_id: int | None = None
    quantity: int | None = None
    cancelled_at: str | None = None


# Bounds on what an observation carries into events and the tracking record: a vendor's
# texts can be anything, and a job's record must stay within what the brokers take.
MAX_TRACKING_NUMBERS = 50


@dataclass(frozen=True, slots=True)
class Observation:
    """What a vendor says about a pair right now, already mapped to the contract's words.

    Its texts come from the vendor: they are made publishable on construction (valid UTF-8,
    at most 1,000 characters each, at most MAX_TRACKING_NUMBERS tracking numbers), so no
    answer can make the status write fail."""

    status: VendorStatus
    vendor_order_ref: str | None = None
    vendor_state: str | None = None
    reason: str | None = None
    tracking_numbers: tuple[str, ...] = ()
    print_files: tuple[LinePrintFiles, ...] = ()
    # The vendor adds tracking numbers at or after completion (Smake's shipments): a pair
    # completed while a shipment has no number yet is looked at again until every one has.
    tracking_expected: bool = False
    # The shipments as the vendor lists them (carrier, time), those without a number too.
    shipments: tuple[ShipmentSeen, ...] = ()
    # Items the producer cancelled (the order goes on without them).
    cancelled_items: tuple[CancelledItemSeen, ...] = ()

    def __post_init__(self) -> None:
        for name in ("vendor_order_ref", "vendor_state", "reason"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, publishable(str(value)))
        object.__setattr__(self, "tracking_numbers", tuple(
            publishable(str(number)) for number in self.tracking_numbers[:MAX_TRACKING_NUMBERS]))
        object.__setattr__(self, "shipments", tuple(
            ShipmentSeen(*(None if value is None else publishable(str(value)) for value in (
                shipment.tracking_number, shipment.carrier_handle, shipment.carrier_title,
                shipment.created_at)))
            for shipment in self.shipments[:MAX_TRACKING_NUMBERS]))
        object.__setattr__(self, "cancelled_items", tuple(
            CancelledItemSeen(publishable(str(item.vendor_item_ref)), item.variant_id,
                              item.quantity, None if item.cancelled_at is None
                              else publishable(str(item.cancelled_at)))
            for item in self.cancelled_items[:MAX_TRACKING_NUMBERS]))


class CreateNotAllowed(Exception):
    """What `intend_to_create` raises when the engine will not have the pair created (a
    re-opened pair that kept only what its polls read): the pair ends rejected, with this
    message. Adapters let it through, as any error of the engine's."""


@dataclass(frozen=True, slots=True)
class PairState:
    """What the engine remembers of a pair between calls (from the tracking topic).

    `intent_at` is when the engine last recorded, durably, the intent to create the pair at
    the vendor (epoch seconds); None means no create was ever attempted, so there is nothing
    to look up before creating. An adapter awaits `intend_to_create()` right before its
    create call: the engine's tracking write, after which a crash, a lost answer or a
    rebalance leaves an intent behind, and the next submit asks the vendor first."""

    vendor_order_ref: str | None = None
    vendor_state: str | None = None
    intent_at: float | None = None
    # When the order was fulfilled (its production completed), for a pair that waited for
    # that (Reevoo with submit_on=fulfilled: its fulfilment_date); None: not known.
    fulfilled_at: float | None = None
    record_intent: Callable[[], Awaitable[None]] | None = field(default=None, compare=False,
                                                                repr=False)
    # Media the vendor holds for the pair (order line id -> the vendor's media id), each
    # recorded as soon as it was uploaded: a retry or a restart reuses it, never uploads again.
    media: Mapping[str, int] = field(default_factory=dict)
    # Re-opened by an operator (`orderflow retry`) after it ended failed, rejected or
    # timed out: a vendor order that failed or was cancelled is not taken again.
    again: bool = False
    # The earliest moment a vendor order for the pair can have been created (the order's
    # placing, epoch seconds): a look-up need not read older ones. None: no bound.
    since: float | None = None
    # Ask the vendor whether it holds the order before creating it, even without an intent
    # of ours (where it can be asked): another copy of the order (another input partition,
    # or a repeat after its pairs' records were dropped) may have created it. A miss then
    # proves absence at once; only our own recent intent needs the vendor's read lag waited.
    ask_first: bool = False
    record_media: Callable[[str, int], Awaitable[None]] | None = field(
        default=None, compare=False, repr=False)

    async def intend_to_create(self) -> None:
        if self.record_intent is not None:
            await self.record_intent()

    async def remember_media(self, line_id: str, media_id: int) -> None:
        """Record, durably, that the line's file is uploaded as `media_id` (before anything
        else is sent)."""
        if self.record_media is not None:
            await self.record_media(line_id, media_id)


class VendorAdapter(Protocol):
    """One vendor. `submit` creates the vendor's order (after asking whether it already
    exists, where the vendor can be asked); `poll` reads its progress."""

    vendor: Vendor

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def verify_credentials(self) -> str:
        """One cheap authenticated call (`orderflow check`): what the vendor said, or a
        VendorError naming what is wrong."""
        ...

    async def submit(self, order: Order, state: PairState) -> Observation: ...

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        """`order` is what `polling_view` kept of it (None: nothing)."""
        ...

    def polling_view(self, order: Order) -> Order | None:
        """What of an accepted order this adapter's polls read: a waiting pair keeps only
        that (None: nothing but the pair's state), so a million of them fit in memory."""
        ...


@runtime_checkable
class BatchPolling(Protocol):
    """A vendor whose orders can be read many at a time (Smake's `filter[id]`)."""

    async def poll_many(self, refs: Sequence[str]) -> dict[str, Observation]: ...
