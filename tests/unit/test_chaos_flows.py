"""The chaos run's flow checks (chaos/flows.py) tell a sound flow from each way it can break."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from chaos.flows import flow_figures
from orderflow.sandbox.outcomes import Outcomes
from orderflow.sandbox.simulators.zakeke import print_file_chunks

SIZES = (1_000, 2_000)
DESIGN = "000-design"


def digest(name: str) -> str:
    h = hashlib.sha256()
    for chunk in print_file_chunks(name, SIZES):
        h.update(chunk)
    return h.hexdigest()


def an_event() -> dict[str, Any]:
    return {"order": {"order_id": "O-1", "lines": [
        {"line_id": "L0", "fulfilment": {"provider": "smake", "variant_id": 1}},
        {"line_id": "L1", "customization": {"provider": "zakeke", "design_id": DESIGN,
                                             "modification_id": None},
         "fulfilment": {"provider": "smake", "variant_id": 2}},
        {"line_id": "L2", "review": True},
    ]}}


def sound_flows() -> dict[str, Any]:
    return {
        "zakeke": {"print_file_bytes": list(SIZES), "lines": [
            {"order_code": "O-1", "design_id": DESIGN, "modification_id": None,
             "file_stem": DESIGN, "files_ready_at": 100.0}]},
        "smake": {"media_uploaded": 2, "orders": [{
            "external_identifier": "O-1", "created_at": 101.0,
            "timeline": [[101.0, "draft"], [105.0, "completed"]],
            # L1 is the second Smake line: item 1.
            "production_files": {"1": [{"id": 7, "sha256": digest(f"{DESIGN}.pdf"),
                                        "size": 1500, "uploaded_at": 100.5}]},
            "tracking_numbers": ["SMK1", "SMK2"]}]},
        "reevoo": {"submissions": [
            {"order_ref": "O-1", "received_at": 106.0, "fulfilment_date": "01-12-2026"}]},
    }


def outcomes(*announced: list[str]) -> Outcomes:
    seen = Outcomes()
    seen.add_status(json.dumps({"event_id": "e1", "order_id": "O-1", "vendor": "smake",
                                "status": "completed", "terminal": True,
                                "tracking_numbers": announced[0]}).encode())
    for n, numbers in enumerate(announced[1:]):
        seen.add_status(json.dumps({"event_id": f"t{n}", "event_type": "order.shipment_tracking",
                                    "order_id": "O-1", "vendor": "smake",
                                    "tracking_numbers": numbers}).encode())
    return seen


def breaches(flows: dict[str, Any], seen: Outcomes | None = None) -> dict[str, int]:
    figures = flow_figures({"O-1": an_event()}, flows, seen or outcomes(["SMK1"], ["SMK1", "SMK2"]))
    return {key: n for key, n in figures["flow_breaches"].items() if n}


def test_a_sound_flow_breaches_nothing_and_counts_what_it_saw() -> None:
    figures = flow_figures({"O-1": an_event()}, sound_flows(), outcomes(["SMK1"], ["SMK1", "SMK2"]))
    assert not any(figures["flow_breaches"].values())
    assert (figures["artwork_lines_produced"], figures["reviews_after_a_production"],
            figures["smake_parcels"], figures["smake_orders_in_several_parcels"]) == (1, 1, 2, 1)
    assert (figures["artwork_uploads"], figures["artwork_uploads_unused"]) == (2, 1)


def mutate(path: str, value: Any) -> dict[str, Any]:
    flows = copy.deepcopy(sound_flows())
    *parents, last = path.split(".")
    node: Any = flows
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return flows


@pytest.mark.parametrize(("path", "value", "breach"), [
    ("smake.orders.0.production_files", {}, "artwork_media_not_exactly_one"),
    ("smake.orders.0.production_files.1.0.sha256", "0" * 64, "artwork_bytes_not_zakekes_file"),
    ("smake.orders.0.production_files.1.0.uploaded_at", 99.0, "artwork_sent_before_the_file_existed"),
    ("smake.orders.0.created_at", 99.0, "artwork_sent_before_the_file_existed"),
    ("zakeke.lines", [], "artwork_without_zakeke_design"),
    ("reevoo.submissions.0.received_at", 104.0, "reviews_before_delivery"),
    ("smake.orders.0.timeline", [[101.0, "draft"], [105.0, "failed"]],
     "reviews_for_a_failed_production"),
    ("reevoo.submissions.0.fulfilment_date", None, "reviews_without_fulfilment_date"),
])
def test_each_broken_flow_is_named(path: str, value: Any, breach: str) -> None:
    assert breaches(mutate(path, value)) == {breach: 1}


def test_a_parcel_whose_number_was_never_announced_is_named() -> None:
    assert breaches(sound_flows(), outcomes(["SMK1"])) == {"parcels_never_announced": 1}
