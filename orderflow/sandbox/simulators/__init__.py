"""Vendor simulators: Zakeke, Smake and Reevoo as their documents describe them, served over
HTTP on loopback, with fault knobs, a ledger of what they received and a `/_sim/` control API.

They import nothing of the adapters or the engine: a test against them checks an adapter
against the vendor documents, not against itself.
"""

from orderflow.sandbox.simulators.base import (
    STATUS_DROPPED,
    FaultKnobs,
    Ledger,
    ManualClock,
    SimulatorServer,
    VendorSimulator,
)
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

__all__ = [
    "STATUS_DROPPED",
    "FaultKnobs",
    "Ledger",
    "ManualClock",
    "ReevooSimulator",
    "SimulatorServer",
    "SmakeSimulator",
    "VendorSimulator",
    "ZakekeSimulator",
]
