"""Bad input goes to the dead-letter topic, unchanged and explained, and never blocks its
partition: the record after it is still processed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from conftest import PARTITIONS, produce, running_service, service_env, settings_from

from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.zakeke import ZakekeSimulator

pytestmark = pytest.mark.integration

HEADERS = {"orderflow.error.class", "orderflow.error.message", "orderflow.original.topic",
           "orderflow.original.partition", "orderflow.original.offset", "orderflow.failed_at"}


async def read_all(bootstrap: str, topic: str, expected: int, timeout_ms: int = 15000) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        waited = 0
        while len(records) < expected and waited < timeout_ms:
            batch = await consumer.getmany(timeout_ms=500)
            waited += 500
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


async def test_poison_records_are_dead_lettered_and_the_next_order_still_runs(broker, topics, monkeypatch):
    valid = sample_orders(1, seed=3, prefix="DLQ", shape="zakeke")[0]
    wrong_schema = json.loads(json.dumps(valid))
    wrong_schema["order"]["lines"][0]["quantity"] = 0
    key = valid["order"]["order_id"].encode()  # same key: same partition, before the valid one
    poison = [
        (key, b"{not json"),
        (key, b"\xff\xfe\x00garbage"),
        (key, json.dumps(wrong_schema).encode()),
        (key, b'{"event_type": "order.created", "pad": "' + b"x" * 5000 + b'"}'),
        (key, None),
    ]
    async with SimulatorServer(ZakekeSimulator(print_files_delay_s=0.2)) as zakeke:
        env = service_env(broker, topics, zakeke=zakeke.base_url)
        env["ORDERFLOW_KAFKA__MAX_RECORD_BYTES"] = "4096"
        async with running_service(broker, topics, settings_from(env, monkeypatch)) as (_app, reader):
            await produce(broker.bootstrap_servers, topics.orders_created, [], raw=poison)
            await produce(broker.bootstrap_servers, topics.orders_created, [valid])
            pair = (valid["order"]["order_id"], "zakeke")
            assert await reader.wait_for({pair}, timeout_s=30)

    letters = await read_all(broker.bootstrap_servers, topics.dead_letter, expected=len(poison))
    assert len(letters) == len(poison)
    assert sorted((r.value or b"") for r in letters) == sorted((v or b"") for _, v in poison)
    reasons = {}
    for record in letters:
        headers = {name: value.decode() for name, value in record.headers}
        assert set(headers) >= HEADERS
        assert headers["orderflow.original.topic"] == topics.orders_created
        assert record.key == key
        reasons[headers["orderflow.error.class"]] = headers["orderflow.error.message"]
    assert set(reasons) == {"JSONDecodeError", "UnicodeDecodeError", "ValidationError",
                            "RecordTooLarge", "EmptyRecord"}
    assert "quantity" in reasons["ValidationError"]
    assert reader.outcomes.terminal_status[pair] == "completed"
