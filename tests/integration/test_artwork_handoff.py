"""The customer's artwork reaches the printer (contract, "One order, one flow"): a line
designed at Zakeke and produced by Smake is sent to Smake only once Zakeke's print-ready file
exists, with that file uploaded to Smake (`POST /media`, once) and referenced by the item's
design; a line whose Zakeke design never gets files ends `rejected` at Smake with nothing
sent. The whole service, against the simulators over HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from conftest import produce, running_service, service_env, settings_from

from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import ReevooSimulator
from orderflow.sandbox.simulators.smake import SmakeSimulator
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator, design_size_mm

pytestmark = pytest.mark.integration


async def run(broker, topics, monkeypatch, zakeke: ZakekeSimulator, smake: SmakeSimulator,
              events, pairs, env=None, timeout_s=60):
    servers: list[SimulatorServer[Any]] = [
        SimulatorServer(zakeke), SimulatorServer(smake), SimulatorServer(ReevooSimulator())]
    for server in servers:
        await server.start()
    try:
        urls = dict(zip(("zakeke", "smake", "reevoo"), (s.base_url for s in servers), strict=True))
        settings = settings_from(service_env(broker, topics, **urls) | (env or {}), monkeypatch)
        async with running_service(broker, topics, settings) as (_app, reader):
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            finished = await reader.wait_for(pairs, timeout_s=timeout_s)
        assert finished, sorted(pairs - reader.outcomes.finished_pairs())[:5]
        return reader.outcomes
    finally:
        for server in servers:
            await server.stop()


async def test_the_printer_gets_exactly_zakekes_file_once_and_only_after_it_existed(
        broker, topics, monkeypatch):
    events = sample_orders(8, seed=31, prefix="ART", shape="mixed")
    orders = {event["order"]["order_id"]: event["order"] for event in events}
    pairs = {(order_id, vendor) for order_id in orders for vendor in ("zakeke", "smake", "reevoo")}
    # Files of 0.3 to 3 MB; the read of an order lags its registration, as Zakeke's does.
    zakeke = ZakekeSimulator(print_files_delay_s=1.0, print_file_bytes=(300_000, 3_000_000),
                             **world.zakeke_options())
    smake = SmakeSimulator(seconds_per_state=0.2, **world.smake_options())
    outcomes = await run(broker, topics, monkeypatch, zakeke, smake, events, pairs,
                         env={"ORDERFLOW_SMAKE__ARTWORK_FORMAT": "PDF"})

    for order_id, order in orders.items():
        assert outcomes.terminal_status[(order_id, "smake")] == "completed"
        [made] = smake.orders_with_external_identifier(order_id)
        artwork_line = order["lines"][0]
        design_id = artwork_line["customization"]["design_id"]
        index = [line["line_id"] for line in order["lines"]
                 if "fulfilment" in line].index(artwork_line["line_id"])
        [media] = smake.production_files(made)[index]
        size, sha256 = zakeke.print_file_digest(f"{quote(design_id, safe='')}.pdf")
        assert (media.size, media.sha256, media.mime_type) == (size, sha256, "application/pdf"), \
            "the printer must get exactly Zakeke's print-ready file"
        [registered] = zakeke.orders_with_code(order_id)
        ready_at = min(line.files_ready_at for line in registered.lines
                       if line.design_id == design_id)
        assert media.uploaded_at >= ready_at, "uploaded before Zakeke's file existed"
        assert made.created_clock >= media.uploaded_at, "the order before its artwork"
        item = made.request["items"][index]["variant"]
        [view] = item["views"]
        [customization] = view["customizations"]
        assert (view["handle"], customization["resource"]["production_method"]["handle"]) == (
            "front", "dtg")
        assert (customization["width"], customization["height"]) == design_size_mm(design_id)
    # Each file uploaded once: one media object per artwork line, none spare.
    assert len(smake.media) == len(orders)
    assert smake.ledger.duplicates() == {} and zakeke.ledger.duplicates() == {}


async def test_a_design_that_never_gets_files_ends_rejected_at_smake_with_nothing_sent(
        broker, topics, monkeypatch):
    events = sample_orders(3, seed=32, prefix="NOART", shape="mixed")
    orders = [event["order"]["order_id"] for event in events]
    pairs = {(order_id, vendor) for order_id in orders for vendor in ("zakeke", "smake")}
    zakeke = ZakekeSimulator(print_files_delay_s=10_000.0)  # the files never come
    smake = SmakeSimulator(seconds_per_state=0.2)
    outcomes = await run(broker, topics, monkeypatch, zakeke, smake, events, pairs,
                         env={"ORDERFLOW_ZAKEKE__DEADLINE_S": "3"})
    for order_id in orders:
        assert outcomes.terminal_status[(order_id, "zakeke")] == "timed_out"
        assert outcomes.terminal_status[(order_id, "smake")] == "rejected"
        assert outcomes.statuses[(order_id, "smake")] == ["rejected"], "nothing before it"
        assert outcomes.reasons[(order_id, "smake")] == (
            "the customer's artwork was never made: its Zakeke pair ended timed_out")
    assert smake.orders == {} and smake.media == {}, "nothing may be sent to Smake"
