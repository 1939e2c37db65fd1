"""The verdict of a chaos run: figures counted from what the output topics, the simulators'
ledgers and the processes say, and the failures those figures show."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from chaos.load import Producer, Stream
from chaos.plan import ChaosPlan
from chaos.replicas import Replicas
from orderflow.contracts import dead_letters as dlq
from orderflow.sandbox.outcomes import Outcomes, Pair
from orderflow.sandbox.simulators.defaults import VENDORS

FAULT_STATUSES = ("429", "500", "502", "503", "504", "dropped")


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything a run gathered, for the verdict."""

    plan: ChaosPlan
    stream: Stream
    producer: Producer
    replicas: Replicas
    outcomes: Outcomes
    expected: set[Pair]
    drained_at: float
    dead_letters: list[dict[str, Any]]
    ledgers: dict[str, dict[str, Any]]
    began_wall: float
    last_fault_end: float
    stalls: int
    freezes: int


def reevoo_repeats_by_kill(o: Observed) -> int:
    """Reevoo cannot be asked whether it holds an order: a replica killed after Reevoo took
    one and before the pair's record was written leaves its next owner no way to know. Such
    a repeat's first create lies within one call of a kill: the request was in flight when
    its sender died (up to a client timeout before the create), or its record was (up to a
    timeout, plus a broker stall, after). Any other repeat is a defect."""
    before, after = o.plan.request_timeout_s, o.plan.request_timeout_s + o.plan.stall_s
    return sum(1 for times in o.ledgers["reevoo"]["duplicate_times"].values()
               if any(times[0] - before <= k <= times[0] + after for k in o.replicas.kill_times))


def completed_unknown_to_vendor(o: Observed) -> int:
    return sum(1 for (order_id, vendor), status in o.outcomes.terminal_status.items()
               if status == "completed" and order_id not in o.ledgers[vendor]["created"])


def print_files_missing(o: Observed) -> int:
    """Completed Zakeke design lines without a print-files event (a composition line has no
    files)."""
    missing = 0
    for (order_id, vendor), status in o.outcomes.terminal_status.items():
        if vendor == "zakeke" and status == "completed":
            lines = [line["line_id"] for line in o.stream.events[order_id]["order"]["lines"]
                     if line.get("customization", {}).get("design_id")]
            missing += sum(1 for line in lines if (order_id, line) not in o.outcomes.print_files)
    return missing


def vendor_faults(o: Observed) -> dict[str, int]:
    faults: Counter[str] = Counter()
    for vendor in VENDORS:
        for statuses in o.ledgers[vendor]["requests"].values():
            for status, n in statuses.items():
                if status in FAULT_STATUSES:
                    faults[f"{vendor} {status}"] += n
    return dict(sorted(faults.items()))


def figures(o: Observed) -> dict[str, Any]:
    outcomes, replicas, ledgers = o.outcomes, o.replicas, o.ledgers
    finished = outcomes.finished_pairs()
    several = outcomes.pairs_with_several_terminals()
    dl_keys = Counter((d["partition"], d["offset"]) for d in o.dead_letters)
    return {
        "orders_produced": o.producer.delivered["order"],
        "redeliveries_produced": o.producer.delivered["redelivery"],
        "cancellations_produced": o.producer.delivered["cancellation"],
        "poison_produced": o.producer.delivered["poison"],
        "producer_failures": o.producer.failed[:10],
        "pairs_expected": len(o.expected),
        "pairs_one_terminal": len(o.expected & finished - several),
        "pairs_lost": len(o.expected - finished),
        "pairs_lost_examples": sorted(o.expected - finished)[:5],
        "pairs_several_terminals": len(several),
        "pairs_several_examples": sorted(several)[:5],
        "pairs_unexpected": len(finished - o.expected),
        "terminal_by_vendor": {v: dict(c) for v, c in sorted(outcomes.by_vendor().items())},
        "duplicates": {v: len(ledgers[v]["duplicates"]) for v in VENDORS},
        "reevoo_duplicates_by_kill": reevoo_repeats_by_kill(o),
        "reevoo_duplicate_creates_s": {
            key: [round(t - o.began_wall, 2) for t in times]
            for key, times in ledgers["reevoo"]["duplicate_times"].items()},
        "kill_times_s": [round(t - o.began_wall, 2) for t in replicas.kill_times],
        "duplicate_keys": {v: ledgers[v]["duplicates"] for v in VENDORS},
        "completed_unknown_to_vendor": completed_unknown_to_vendor(o),
        "pairs_rejected": sum(1 for status in outcomes.terminal_status.values()
                              if status == "rejected"),
        "smake_completed_without_tracking": len(outcomes.completed_without_tracking("smake")),
        "shipment_tracking_events": sum(
            1 for pair, announced in outcomes.shipment_tracking.items()
            if pair[1] == "smake" and announced and outcomes.terminal_status.get(pair) == "completed"),
        "print_files_missing": print_files_missing(o),
        "events_repeated": outcomes.repeated_events(),
        "dead_letters_distinct": len(dl_keys),
        "dead_letters_repeated": sum(dl_keys.values()) - len(dl_keys),
        "dead_letters_without_headers": sum(1 for d in o.dead_letters
                                            if not set(dlq.REQUIRED) <= d["headers"]),
        "dead_letter_reasons": dict(Counter(d["class"] for d in o.dead_letters)),
        "kills": replicas.kills,
        "broker_stalls": o.stalls,
        "replica_freezes": o.freezes,
        "sigterm_exit_codes": dict(Counter(str(code) for code, _ in replicas.sigterm_exits)),
        "sigterm_max_s": round(max((t for _, t in replicas.sigterm_exits), default=0.0), 1),
        "sigterm_bad_exits": [(c, round(t, 1)) for c, t in replicas.sigterm_exits
                              if c != 0 or t > o.plan.shutdown_grace_s + 15],
        "vendor_faults": vendor_faults(o),
        "vendor_requests": {v: ledgers[v]["total_requests"] for v in VENDORS},
        "drain_after_last_fault_s": round(max(0.0, o.drained_at - o.last_fault_end), 1),
        "replica_peak_rss_mib": round(replicas.peak_rss_mib, 1),
        "healthz_answers": dict(replicas.health_probes),
        "replicas_exited_on_their_own": replicas.exited_on_their_own(),
    }


def failures(f: dict[str, Any], o: Observed) -> list[str]:
    """What the figures show went wrong, in words (empty: the run passed)."""
    plan, dup = o.plan, f["duplicates"]
    checks: list[tuple[bool, str]] = [
        (bool(f["producer_failures"]), "the producer could not deliver every record"),
        (f["pairs_lost"] > 0, f"{f['pairs_lost']} pairs lost, e.g. {f['pairs_lost_examples']}"),
        (f["pairs_several_terminals"] > 0, f"{f['pairs_several_terminals']} pairs with two "
                                           f"different terminal events, e.g. {f['pairs_several_examples']}"),
        (f["pairs_unexpected"] > 0, f"{f['pairs_unexpected']} pairs announced that no order asked for"),
        *((dup[v] > 0, f"{dup[v]} orders created twice at {v}: "
                       f"{dict(list(f['duplicate_keys'][v].items())[:5])}") for v in ("zakeke", "smake")),
        (dup["reevoo"] > f["reevoo_duplicates_by_kill"],
         f"{dup['reevoo'] - f['reevoo_duplicates_by_kill']} orders sent twice to Reevoo with no "
         "kill during the call"),
        (f["completed_unknown_to_vendor"] > 0, f"{f['completed_unknown_to_vendor']} pairs announced "
                                               "completed that the vendor does not hold"),
        (f["pairs_rejected"] > 0, f"{f['pairs_rejected']} pairs rejected (every order fed is valid: "
                                  "a refusal means a request the vendor found malformed)"),
        (f["smake_completed_without_tracking"] > 0, f"{f['smake_completed_without_tracking']} "
                                                    "completed Smake pairs whose tracking numbers "
                                                    "were never announced"),
        (f["print_files_missing"] > 0, f"{f['print_files_missing']} completed Zakeke lines without "
                                       "a print-files event"),
        *((count > 0, f"{count} {breach.replace('_', ' ')}, e.g. "
                       f"{f['flow_breach_examples'].get(breach)}")
          for breach, count in f.get("flow_breaches", {}).items()),
        (f.get("artwork_lines_produced", 1) == 0, "no line designed at Zakeke reached Smake"),
        (f.get("smake_orders_in_several_parcels", 1) == 0, "no Smake order came in two parcels"),
        # A full run has calm stretches where a cancellation meets Smake still producing;
        # a short one is faults end to end (tests/integration cover that moment on its own).
        (plan.cancellations >= 200 and f.get("smake_orders_cancelled_at_smake", 1) == 0,
         "no Smake order was cancelled at Smake"),
        (f["dead_letters_distinct"] != f["poison_produced"],
         f"{f['dead_letters_distinct']} dead letters for {f['poison_produced']} poison records"),
        (f["dead_letters_without_headers"] > 0, f"{f['dead_letters_without_headers']} dead letters "
                                                "without their headers"),
        (bool(f["sigterm_bad_exits"]), "SIGTERM not answered by a clean exit within the grace "
                                       f"period: {f['sigterm_bad_exits']}"),
        (f["kills"] < plan.kills, f"only {f['kills']} of {plan.kills} kills happened"),
        (bool(f["replicas_exited_on_their_own"]),
         f"replicas exited without being asked: {f['replicas_exited_on_their_own']}"),
        (bool(f["healthz_answers"].get("503")), f"/healthz answered 503 "
                                                f"{f['healthz_answers'].get('503')} times"),
        (o.freezes < plan.freezes, f"only {o.freezes} of {plan.freezes} replica freezes happened"),
        (o.stalls < plan.stalls, f"only {o.stalls} of {plan.stalls} broker stalls happened"),
        (f.get("pause_command_exits") != [0, 0],
         f"orderflow pause/resume exits: {f.get('pause_command_exits')}"),
        (bool(f.get("smake_webhooks", {}).get("forged_acknowledged")),
         f"{f.get('smake_webhooks', {}).get('forged_acknowledged')} forged webhook deliveries "
         "acknowledged"),
    ]
    return [message for failed, message in checks if failed]
