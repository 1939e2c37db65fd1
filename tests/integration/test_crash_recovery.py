"""`orderflow run` killed with SIGKILL while orders wait for their print files, then started
again: every order completes, none is lost, none is registered twice at Zakeke.

The orders are produced with confluent-kafka (librdkafka), not orderflow's own client, and the
service runs as its own process, configured only through ORDERFLOW_* variables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from conftest import needs, service_env

from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_service(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "orderflow", "run"],
                                env={**os.environ, **env}, stdout=log, stderr=log)


def produce_with_librdkafka(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "partitioner": "consistent_random"})
    for event in events:
        producer.produce(topic, json.dumps(event).encode(), key=event["order"]["order_id"].encode())
    assert producer.flush(30) == 0


async def test_sigkill_while_waiting_for_print_files_loses_and_duplicates_nothing(broker, topics, tmp_path):
    needs(broker, "evicts_dead_members")  # the replica comes back as a new member
    async with SimulatorServer(ZakekeSimulator(print_files_delay_s=6.0)) as zakeke:
        env = service_env(broker, topics, zakeke=zakeke.base_url)
        events = sample_orders(40, seed=11, prefix="KILL", shape="zakeke")
        pairs = {(e["order"]["order_id"], "zakeke") for e in events}
        reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
        await reader.start()
        service = start_service(env, tmp_path / "service.log")
        try:
            produce_with_librdkafka(broker.bootstrap_servers, topics.orders_created, events)
            # Wait until every order is registered and waiting for its print files...
            for _ in range(300):
                await reader.poll()
                if len(reader.outcomes.statuses) == len(pairs):
                    break
            assert len(reader.outcomes.statuses) == len(pairs), "orders were not all submitted"
            assert not reader.outcomes.finished_pairs(), "print files came too early for this test"
            # ... then kill it without a chance to clean up, and start it again.
            service.send_signal(signal.SIGKILL)
            service.wait(10)
            service = start_service(env, tmp_path / "service.log")
            assert await reader.wait_for(pairs, timeout_s=90), "not every order completed after restart"
            service.send_signal(signal.SIGTERM)
            assert service.wait(30) == 0, "SIGTERM must end the service with exit code 0"
        finally:
            if service.poll() is None:
                service.kill()
                service.wait()
            await reader.stop()

    outcomes = reader.outcomes
    assert outcomes.pairs_with_several_terminals() == set()
    assert {outcomes.terminal_status[p] for p in pairs} == {"completed"}
    assert zakeke.state.ledger.duplicates() == {}, "an order was registered twice at Zakeke"
    assert zakeke.state.ledger.total_created == len(events)
