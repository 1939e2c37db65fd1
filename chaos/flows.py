"""One order, one flow, checked against what the vendors hold at the end of a run (each
simulator's `GET /_sim/flows`), beside the counts of lost and repeated pairs:

- the customer's artwork reached the printer: every Smake order's item for a line designed
  at Zakeke prints from exactly one media whose bytes are Zakeke's print-ready file in the
  configured format, uploaded after that file existed, and the order was created after it;
- reviews waited for delivery: Reevoo got an order with a Smake line only after its Smake
  order completed, with a `fulfilment_date`, and never one whose production failed;
- every parcel was announced: a completed Smake pair's announcements name every parcel's
  tracking number;
- cancellations reached every vendor: an order cancelled before it was read (on its own
  partition) was sent nowhere; every Smake order of a cancelled order was cancelled at
  Smake, unless the pair said why not (`order.cancellation_refused`) or it had ended
  otherwise; no pair refused one cancellation twice, and no order never cancelled got a
  refusal."""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import cache
from typing import Any

from orderflow.sandbox.outcomes import Outcomes
from orderflow.sandbox.simulators.zakeke import print_file_chunks

# The order's Smake pair and Zakeke's clock are read in separate places; a file "existed"
# when the simulator says, and a create is "after" it within this much of clock skew.
SKEW_S = 0.05


@cache
def _digest(file_name: str, sizes: tuple[int, int]) -> str:
    digest = hashlib.sha256()
    for chunk in print_file_chunks(file_name, sizes):
        digest.update(chunk)
    return digest.hexdigest()


def _smake_line_index(order: dict[str, Any], line_id: str) -> int:
    """Where the line sits among the items of the Smake order: Smake's items are the order's
    Smake lines, in order."""
    smake = [line["line_id"] for line in order["lines"]
             if (line.get("fulfilment") or {}).get("provider") == "smake"]
    return smake.index(line_id)


def _artwork_lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in order["lines"]
            if (line.get("customization") or {}).get("provider") == "zakeke"
            and (line.get("customization") or {}).get("design_id")
            and (line.get("fulfilment") or {}).get("provider") == "smake"]


def _state_at(timeline: list[list[Any]], state: str) -> float | None:
    return next((at for at, name in timeline if name == state), None)


def flow_figures(events: dict[str, dict[str, Any]], flows: dict[str, dict[str, Any]],
                 outcomes: Outcomes, *, artwork_format: str = "PDF",
                 cancelled: dict[str, tuple[str, bool]] | None = None) -> dict[str, Any]:
    zakeke, smake, reevoo = flows["zakeke"], flows["smake"], flows["reevoo"]
    sizes = (int(zakeke["print_file_bytes"][0]), int(zakeke["print_file_bytes"][1]))
    files = {(line["order_code"], line["design_id"], line["modification_id"]): line
             for line in zakeke["lines"]}
    smake_orders: dict[str, list[dict[str, Any]]] = {}
    for held in smake["orders"]:
        smake_orders.setdefault(held["external_identifier"], []).append(held)

    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}

    def wrong(what: str, order_id: str) -> None:
        counts[what] += 1
        examples.setdefault(what, [])
        if len(examples[what]) < 5:
            examples[what].append(order_id)

    referenced = 0
    for order_id, event in events.items():
        order = event["order"]
        lines = _artwork_lines(order)
        held_orders = smake_orders.get(order_id, [])
        if not lines or not held_orders:
            continue
        held = held_orders[0]  # more than one is counted as created twice elsewhere
        for line in lines:
            counts["artwork_lines_produced"] += 1
            customization = line["customization"]
            made = files.get((order_id, customization["design_id"],
                              customization.get("modification_id")))
            media = held["production_files"].get(str(_smake_line_index(order, line["line_id"])), [])
            referenced += len(media)
            if made is None:
                wrong("artwork_without_zakeke_design", order_id)
                continue
            if len(media) != 1:
                wrong("artwork_media_not_exactly_one", order_id)
                continue
            name = f"{made['file_stem']}.{artwork_format.lower()}"
            if media[0]["sha256"] != _digest(name, sizes):
                wrong("artwork_bytes_not_zakekes_file", order_id)
            if (media[0]["uploaded_at"] < made["files_ready_at"] - SKEW_S
                    or held["created_at"] < made["files_ready_at"] - SKEW_S):
                wrong("artwork_sent_before_the_file_existed", order_id)

    for submission in reevoo["submissions"]:
        order_id = submission["order_ref"]
        order = events.get(order_id, {}).get("order")
        if order is None or not any((line.get("fulfilment") or {}).get("provider") == "smake"
                                    for line in order["lines"]):
            continue
        counts["reviews_after_a_production"] += 1
        held_orders = smake_orders.get(order_id, [])
        completed = [_state_at(h["timeline"], "completed") for h in held_orders]
        done = min((at for at in completed if at is not None), default=None)
        if any(_state_at(h["timeline"], "failed") is not None for h in held_orders):
            wrong("reviews_for_a_failed_production", order_id)
        elif done is None or submission["received_at"] < done - SKEW_S:
            wrong("reviews_before_delivery", order_id)
        if not submission.get("fulfilment_date"):
            wrong("reviews_without_fulfilment_date", order_id)

    for (order_id, vendor), status in outcomes.terminal_status.items():
        if vendor != "smake" or status != "completed" or order_id not in smake_orders:
            continue
        expected = set(smake_orders[order_id][0]["tracking_numbers"])
        announced = {n for numbers in outcomes.shipment_tracking.get((order_id, vendor), [])
                     for n in numbers}
        counts["smake_parcels"] += len(expected)
        if len(expected) > 1:
            counts["smake_orders_in_several_parcels"] += 1
        if not expected <= announced:
            wrong("parcels_never_announced", order_id)

    cancelled = cancelled or {}
    created = {vendor: {key for key in flows[vendor].get("created_keys", ())}
               for vendor in ("zakeke", "smake", "reevoo")}
    for order_id, (timing, elsewhere) in cancelled.items():
        counts[f"cancelled_{timing}"] += 1
        if (timing == "before" and not elsewhere
                and any(order_id in keys for keys in created.values())):
            wrong("sent_though_cancelled_before", order_id)
        for held in smake_orders.get(order_id, []):
            states = {name for _, name in held["timeline"]}
            if "cancelled" in states:
                counts["smake_orders_cancelled_at_smake"] += 1
            elif (order_id, "smake") in outcomes.refusals:
                counts["smake_cancellations_refused"] += 1
            elif outcomes.terminal_status.get((order_id, "smake")) not in ("failed", None):
                wrong("smake_left_created_not_cancelled", order_id)
    for (order_id, _vendor), refusals in outcomes.refusals.items():
        counts["cancellations_refused"] += 1
        if len(refusals) > 1:
            wrong("refused_more_than_once", order_id)
        if order_id not in cancelled:
            wrong("refused_a_cancellation_never_made", order_id)
    counts["pairs_cancelled"] = sum(1 for status in outcomes.terminal_status.values()
                                    if status == "cancelled")

    return {
        **{key: counts[key] for key in (
            "artwork_lines_produced", "reviews_after_a_production", "smake_parcels",
            "smake_orders_in_several_parcels", "cancelled_before", "cancelled_waiting",
            "cancelled_producing", "cancelled_ended", "pairs_cancelled",
            "smake_orders_cancelled_at_smake", "smake_cancellations_refused",
            "cancellations_refused")},
        # Smake cannot be asked which files it holds: an upload whose answer was lost (or
        # whose sender was killed) is made again, and the first copy stays unused.
        "artwork_uploads": smake["media_uploaded"],
        "artwork_uploads_unused": smake["media_uploaded"] - referenced,
        "flow_breaches": {key: counts[key] for key in FLOW_BREACHES},
        "flow_breach_examples": examples,
    }


FLOW_BREACHES = (
    "artwork_without_zakeke_design", "artwork_media_not_exactly_one",
    "artwork_bytes_not_zakekes_file", "artwork_sent_before_the_file_existed",
    "reviews_for_a_failed_production", "reviews_before_delivery",
    "reviews_without_fulfilment_date", "parcels_never_announced",
    "sent_though_cancelled_before", "smake_left_created_not_cancelled",
    "refused_more_than_once", "refused_a_cancellation_never_made",
)
