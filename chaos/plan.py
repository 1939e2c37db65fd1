"""What a chaos run is asked to do (ChaosPlan) and what it found (ChaosReport)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ChaosPlan:
    orders: int = 10_000
    rate: float = 50.0             # orders produced a second
    partitions: int = 6
    replicas: int = 3
    kills: int = 12
    stalls: int = 2
    stall_s: float = 10.0
    freezes: int = 2               # a replica SIGSTOPped for freeze_s, then thawed: a zombie
    freeze_s: float = 10.0
    outage_s: float = 60.0
    outage_vendor: str = "smake"
    throttle_bursts: int = 6
    throttle_s: float = 3.0
    retry_after_s: float = 2.0
    error_rate: float = 0.10
    slow_rate: float = 0.05
    fail_after_effect_rate: float = 0.03  # Zakeke and Smake only: Reevoo cannot be asked
    latency_s: float = 0.02
    request_timeout_s: float = 2.0
    shutdown_grace_s: float = 5.0
    poison: int = 40
    redeliveries: int = 100        # orders published a second time, as at-least-once upstream
    # Orders cancelled (`order.cancelled`), at every timing in turn: before the order, while
    # it waits or is being created, while Smake produces, and after it ended; a third of
    # them on another partition than the order, a tenth of them twice.
    cancellations: int = 600
    drain_timeout_s: float = 600.0
    # `orderflow pause smake`, then `resume` this long after (the commands as processes).
    pause_s: float = 20.0
    # Smake's webhooks go to one replica (killed now and then, like any): shares of forged
    # and repeated deliveries among them.
    webhook_forged_rate: float = 0.05
    webhook_repeat_rate: float = 0.10
    seed: int = 7
    # The broker (orderflow/sandbox/broker.py): "" for TEST_BROKER's (the embedded one by
    # default), `tansu`, `noida`, or kafka://host:port.
    broker: str = ""
    # Each replica a static member of the group (ORDERFLOW_KAFKA__GROUP_INSTANCE_ID per slot).
    static_membership: int = 0
    work_dir: Path = Path("chaos/results/run")

    @classmethod
    def short(cls, **overrides: Any) -> ChaosPlan:
        """The variant `make test` runs: every kind of fault, in about a minute."""
        plan = cls(orders=600, rate=25.0, kills=3, stalls=1, stall_s=5.0, freezes=0, outage_s=8.0,
                   throttle_bursts=2, poison=12, redeliveries=10, cancellations=60,
                   drain_timeout_s=180.0,
                   pause_s=5.0)
        for name, value in overrides.items():
            setattr(plan, name, value)
        return plan

    def problems(self) -> list[str]:
        """What makes this plan impossible to run, in words (empty: fine)."""
        found = []
        if self.orders < 1:
            found.append("orders must be at least 1")
        if self.rate <= 0:
            found.append("rate must be above 0")
        if not 1 <= self.replicas <= self.partitions:
            found.append("replicas must be between 1 and the number of partitions")
        if not 0 <= self.error_rate + self.slow_rate <= 1 or not 0 <= self.fail_after_effect_rate <= 1:
            found.append("fault rates are shares between 0 and 1")
        return found

    @property
    def production_s(self) -> float:
        return self.orders / self.rate


@dataclass
class ChaosReport:
    plan: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def render(self) -> str:
        f = self.figures
        rows = [
            ("orders produced (delivered to the broker)", f["orders_produced"]),
            ("  of which re-deliveries of an order already sent", f["redeliveries_produced"]),
            ("poison records fed", f["poison_produced"]),
            ("(order, vendor) pairs expected", f["pairs_expected"]),
            ("pairs with exactly one terminal status", f["pairs_one_terminal"]),
            ("pairs lost (no terminal status)", f["pairs_lost"]),
            ("pairs with two different terminal events", f["pairs_several_terminals"]),
            ("pairs announced that were never expected", f["pairs_unexpected"]),
            ("terminal statuses by vendor", f["terminal_by_vendor"]),
            ("vendor orders created twice: zakeke", f["duplicates"]["zakeke"]),
            ("vendor orders created twice: smake", f["duplicates"]["smake"]),
            ("vendor orders created twice: reevoo (cannot be asked)", f["duplicates"]["reevoo"]),
            ("  of which a SIGKILL came between Reevoo's 202 and the record", f["reevoo_duplicates_by_kill"]),
            ("completed pairs the vendor does not hold", f["completed_unknown_to_vendor"]),
            ("pairs rejected (a request the vendor found malformed)", f["pairs_rejected"]),
            ("completed Smake pairs with tracking numbers announced", f["shipment_tracking_events"]),
            ("  completed Smake pairs still without them", f["smake_completed_without_tracking"]),
            ("Zakeke lines completed without print files", f["print_files_missing"]),
            ("lines designed at Zakeke and produced by Smake", f.get("artwork_lines_produced")),
            ("  artwork uploads to Smake / unused (answer lost, sender killed)",
             f"{f.get('artwork_uploads')} / {f.get('artwork_uploads_unused')}"),
            ("reviews of orders with a production", f.get("reviews_after_a_production")),
            ("Smake parcels / orders in two parcels",
             f"{f.get('smake_parcels')} / {f.get('smake_orders_in_several_parcels')}"),
            ("cancellations: before / waiting / producing / after the end",
             f"{f.get('cancelled_before')} / {f.get('cancelled_waiting')} / "
             f"{f.get('cancelled_producing')} / {f.get('cancelled_ended')}"),
            ("  pairs cancelled / cancellations refused (order.cancellation_refused)",
             f"{f.get('pairs_cancelled')} / {f.get('cancellations_refused')}"),
            ("  Smake orders cancelled at Smake / refused by it",
             f"{f.get('smake_orders_cancelled_at_smake')} / {f.get('smake_cancellations_refused')}"),
            ("flow breaches (each must be 0)", f.get("flow_breaches")),
            ("status/print-files events repeated (same event_id)", f["events_repeated"]),
            ("dead letters (distinct input records)", f["dead_letters_distinct"]),
            ("dead letters written again after a crash", f["dead_letters_repeated"]),
            ("dead letters missing a header", f["dead_letters_without_headers"]),
            ("SIGKILLs", f["kills"]),
            ("broker stalls (SIGSTOP)", f["broker_stalls"]),
            ("replicas frozen past their session (SIGSTOP)", f["replica_freezes"]),
            ("SIGTERM exits (code: count)", f["sigterm_exit_codes"]),
            ("SIGTERM to exit, max seconds", f["sigterm_max_s"]),
            ("vendor requests faulted (5xx/429/slow/dropped)", f["vendor_faults"]),
            ("drain after the last fault, seconds", f["drain_after_last_fault_s"]),
            ("whole run, seconds", f["run_s"]),
            ("replica peak RSS, MiB (max)", f["replica_peak_rss_mib"]),
            ("/healthz answers of running replicas, once a second", f["healthz_answers"]),
            ("replicas that exited on their own (crashes)", len(f["replicas_exited_on_their_own"])),
            ("orderflow pause smake / resume smake, exit codes", f.get("pause_command_exits")),
            ("Smake webhooks: delivered / acknowledged / refused",
             "{deliveries} / {acknowledged} / {refused}".format(**f.get("smake_webhooks", {})
                                                               ) if f.get("smake_webhooks") else None),
            ("  forged deliveries sent / acknowledged (must be 0)",
             f"{f.get('smake_webhooks', {}).get('forged')} / "
             f"{f.get('smake_webhooks', {}).get('forged_acknowledged')}"),
        ]
        width = max(len(label) for label, _ in rows)
        lines = [f"{label:<{width}}  {value}" for label, value in rows]
        verdict = "PASSED" if self.passed else "FAILED:\n  - " + "\n  - ".join(self.failures)
        return "\n".join(["", "chaos run figures", "-" * (width + 12), *lines, "", verdict])

    def to_json(self) -> str:
        return json.dumps({"plan": self.plan, "figures": self.figures, "failures": self.failures,
                           "timeline": self.timeline}, indent=2, default=str)


# ----------------------------------------------------------------------------- the input
