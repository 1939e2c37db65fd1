"""The vendors as their notes say they really are, harder than their pages alone: one place
that says how hard the sandbox's simulators are, and what the service must be told to work
with them (as an operator would configure it for the real vendors).

- Zakeke reads lag behind registration (`ZAKEKE_READ_LAG_S`), configurator items never get
  print files, and items do not echo our line codes (Names and Numbers items carry their
  `designModificationID`).
- Smake's filters match parts of a value, longer matches first; its producer knows only
  its own shipping and payment handles; shipments' tracking numbers appear a while after
  the order completed.

The chaos harness, the benchmark and the integration tests run against this world; the
simulators' command line serves it unless told `--kind`.
"""

from __future__ import annotations

from typing import Any

from orderflow.config.settings import env_name

ZAKEKE_READ_LAG_S = 2.0
SMAKE_TRACKING_DELAY_S = 2.0
# Our method words (as the sample orders use them) to the handles the Smake producer set up.
SMAKE_SHIPPING_HANDLES = {"standard": "dhl-paket", "express": "ups-express"}
SMAKE_PAYMENT_HANDLES = {"invoice": "invoice-b2b", "prepayment": "vorkasse"}


def zakeke_options() -> dict[str, Any]:
    return {"read_lag_s": ZAKEKE_READ_LAG_S, "composition_files": False, "echo_line_codes": False}


def smake_options() -> dict[str, Any]:
    return {"partial_match_filters": True, "tracking_delay_s": SMAKE_TRACKING_DELAY_S,
            "shipping_methods": set(SMAKE_SHIPPING_HANDLES.values()),
            "payment_methods": set(SMAKE_PAYMENT_HANDLES.values())}


def service_env() -> dict[str, str]:
    """The ORDERFLOW_* settings that fit this world: the producer's handles, and a settle
    window past Zakeke's read lag."""
    return {
        env_name("smake", "shipping_method_map"): _as_map(SMAKE_SHIPPING_HANDLES),
        env_name("smake", "payment_method_map"): _as_map(SMAKE_PAYMENT_HANDLES),
        env_name("zakeke", "register_settle_s"): str(3 * ZAKEKE_READ_LAG_S),
    }


def _as_map(handles: dict[str, str]) -> str:
    return ",".join(f"{ours}={theirs}" for ours, theirs in handles.items())
