"""Which vendors must act on an order (contract "Routing"). Pure logic, no I/O.

Which lines concern a vendor is decided once, by the order line itself (`OrderLine.zakeke`,
`OrderLine.smake`); the adapters send those same lines."""

from __future__ import annotations

from collections import Counter

from orderflow.adapters.artwork import artwork_lines
from orderflow.config.settings import Settings
from orderflow.contracts.events import Order, OtherProvider, Vendor


def route(order: Order, settings: Settings) -> list[Vendor]:
    """The enabled vendors this order goes to, in a fixed order. Lines customized or
    fulfilled by a provider orderflow does not know take no part (see `unknown_providers`)."""
    vendors: list[Vendor] = []
    if settings.zakeke.enabled and any(line.zakeke is not None for line in order.lines):
        vendors.append(Vendor.ZAKEKE)
    # An order with Smake lines but no shipping address still gets a Smake job: the pair
    # must end `rejected`, visibly, rather than vanish.
    if settings.smake.enabled and any(line.smake is not None for line in order.lines):
        vendors.append(Vendor.SMAKE)
    channels = settings.reevoo.sales_channels
    if settings.reevoo.enabled and (channels is None or order.sales_channel in channels):
        vendors.append(Vendor.REEVOO)
    return vendors


def waits_for(order: Order, vendors: list[Vendor], settings: Settings) -> dict[Vendor, Vendor]:
    """Which of the order's pairs waits for which other pair of the same order (contract,
    "One order, one flow"). Pairs not named here start at once.

    - Smake waits for Zakeke when a line is designed at Zakeke and produced by Smake: the
      printer gets the customer's print-ready file, which exists once Zakeke completed.
    - With `ORDERFLOW_REEVOO__SUBMIT_ON=fulfilled`, Reevoo waits for the order's Smake pair
      to complete (the parcel is on its way)."""
    waiting: dict[Vendor, Vendor] = {}
    if Vendor.ZAKEKE in vendors and Vendor.SMAKE in vendors and artwork_lines(order):
        waiting[Vendor.SMAKE] = Vendor.ZAKEKE
    if (settings.reevoo.submit_on == "fulfilled" and Vendor.REEVOO in vendors
            and Vendor.SMAKE in vendors):
        waiting[Vendor.REEVOO] = Vendor.SMAKE
    return waiting


def unknown_providers(order: Order) -> Counter[str]:
    """How many of the order's lines name a provider orderflow does not know, by where:
    `customization` or `fulfilment`."""
    found: Counter[str] = Counter()
    for line in order.lines:
        if isinstance(line.customization, OtherProvider):
            found["customization"] += 1
        if isinstance(line.fulfilment, OtherProvider):
            found["fulfilment"] += 1
    return found
