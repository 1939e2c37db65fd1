"""Vendor simulators: Zakeke, Smake and Reevoo as their documents describe them, served over
HTTP on loopback, with fault knobs, a ledger of what they received and a `/_sim/` control API.

They import nothing of the adapters or the engine: a test against them checks an adapter
against the vendor documents, not against itself.

    async with SimulatorServer(ZakekeSimulator(clock=ManualClock())) as zakeke:
        ... zakeke.base_url ... zakeke.state.ledger.duplicates() ... zakeke.state.knobs ...

Default credentials (each a constructor argument):
    Zakeke  HTTP Basic zakeke-sim-client / zakeke-sim-secret on POST /token
    Smake   Authorization: Bearer smake-sim-key; base URL {root}/v2/apps/1
    Reevoo  HTTP Basic reevoo-sim-key / reevoo-sim-secret; TRKREF TRKREF123
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
