"""What the simulators accept unless told otherwise: the one place their default
credentials are written, for the simulators themselves, their command line, and the
service settings that point at them (sandbox processes, demo)."""

from __future__ import annotations

from orderflow.contracts.events import Vendor

VENDORS: tuple[str, ...] = tuple(str(vendor) for vendor in Vendor)

ZAKEKE_CLIENT_ID = "zakeke-sim-client"
ZAKEKE_CLIENT_SECRET = "zakeke-sim-secret"
SMAKE_API_KEY = "smake-sim-key"
SMAKE_API_PREFIX = "/v2/apps/1"
REEVOO_API_KEY = "reevoo-sim-key"
REEVOO_API_SECRET = "reevoo-sim-secret"
REEVOO_TRKREF = "TRKREF123"


def service_credentials() -> dict[str, dict[str, str]]:
    """The service's credential settings for each simulator, by vendor and setting name."""
    return {
        "zakeke": {"client_id": ZAKEKE_CLIENT_ID, "client_secret": ZAKEKE_CLIENT_SECRET},
        "smake": {"api_key": SMAKE_API_KEY},
        "reevoo": {"api_key": REEVOO_API_KEY, "api_secret": REEVOO_API_SECRET,
                   "trkref": REEVOO_TRKREF},
    }
