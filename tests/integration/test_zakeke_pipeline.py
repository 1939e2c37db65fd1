"""Orders with customized lines go through the whole service to Zakeke and back."""

from __future__ import annotations

import pytest
from conftest import produce, running_service, service_env, settings_from

from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = pytest.mark.integration


async def test_customized_orders_get_print_files_and_complete(broker, topics, monkeypatch):
    async with SimulatorServer(ZakekeSimulator(print_files_delay_s=1.0)) as zakeke:
        settings = settings_from(service_env(broker, topics, zakeke=zakeke.base_url), monkeypatch)
        events = sample_orders(20, seed=1, prefix="ZK", shape="zakeke")
        async with running_service(broker, topics, settings) as (_app, reader):
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            pairs = {(e["order"]["order_id"], "zakeke") for e in events}
            assert await reader.wait_for(pairs, timeout_s=60), "not every order completed"

    outcomes = reader.outcomes
    for pair in pairs:
        statuses = outcomes.statuses[pair]
        assert statuses[0] == "submitted", statuses
        assert statuses[-1] == "completed", statuses
        assert statuses.count("completed") == 1
    design_lines = {(e["order"]["order_id"], line["line_id"]) for e in events
                    for line in e["order"]["lines"] if "design_id" in line.get("customization", {})}
    assert set(outcomes.print_files) == design_lines
    # Each order registered exactly once at Zakeke.
    assert zakeke.state.ledger.duplicates() == {}
    assert zakeke.state.ledger.total_created == len(events)
