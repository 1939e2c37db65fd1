"""The adapters of the vendors the settings enable: what the service and `orderflow check`
both build."""

from __future__ import annotations

from orderflow.adapters.http import RequestObserver
from orderflow.adapters.outcomes import VendorAdapter
from orderflow.adapters.reevoo import ReevooAdapter
from orderflow.adapters.smake import SmakeAdapter
from orderflow.adapters.zakeke import ZakekeAdapter
from orderflow.config.settings import Settings
from orderflow.contracts.events import Vendor


def build_adapters(settings: Settings, observer: RequestObserver) -> dict[Vendor, VendorAdapter]:
    """One adapter per enabled vendor."""
    adapters: dict[Vendor, VendorAdapter] = {}
    zakeke = ZakekeAdapter(settings.zakeke, observer) if settings.zakeke.enabled else None
    if zakeke is not None:
        adapters[Vendor.ZAKEKE] = zakeke
    if settings.smake.enabled:
        # The lines designed at Zakeke and produced by Smake get their artwork from Zakeke.
        adapters[Vendor.SMAKE] = SmakeAdapter(settings.smake, observer, artwork=zakeke)
    if settings.reevoo.enabled:
        adapters[Vendor.REEVOO] = ReevooAdapter(settings.reevoo, observer)
    return adapters
