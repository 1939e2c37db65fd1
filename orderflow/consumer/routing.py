"""Which vendors must act on an order (contract "Routing"). Pure logic, no I/O."""

from __future__ import annotations

from orderflow.config.settings import Settings
from orderflow.contracts.events import Order, Vendor


def route(order: Order, settings: Settings) -> list[Vendor]:
    """The enabled vendors this order goes to, in a fixed order."""
    vendors: list[Vendor] = []
    if settings.zakeke.enabled and any(
        line.customization is not None and line.customization.provider == "zakeke"
        for line in order.lines
    ):
        vendors.append(Vendor.ZAKEKE)
    # An order with Smake lines but no shipping address still gets a Smake job: the pair
    # must end `rejected`, visibly, rather than vanish.
    if settings.smake.enabled and any(
        line.fulfilment is not None and line.fulfilment.provider == "smake" for line in order.lines
    ):
        vendors.append(Vendor.SMAKE)
    channels = settings.reevoo.sales_channels
    if settings.reevoo.enabled and (channels is None or order.sales_channel in channels):
        vendors.append(Vendor.REEVOO)
    return vendors
