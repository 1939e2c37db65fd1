"""What the test broker does as Kafka does, measured, so that the next broker change is
measured and not guessed. Each probe prints its finding (the session's summary lists them,
and docs/brokers.md keeps the table) and checks it against what the broker declares
(`BrokerAbilities` in orderflow/sandbox/broker.py): a broker that starts or stops doing
something fails here first, naming it.

- end offsets: after one record and then a batch of three, ListOffsets against the high
  watermark the fetches report;
- idempotent producing: InitProducerId, the same batch sent twice, and a sequence gap;
- compaction: old versions and tombstones removed, the offsets of what stays unchanged;
- refusals: a replication factor above the broker count, an unknown cleanup policy;
- configs: DescribeConfigs with the defaults, not only what was set;
- a consumer's group join, in seconds;
- a member that died: dropped at its session's end, its partitions handed on (or not).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.protocol.transaction import InitProducerIdRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from conftest import record_finding

from orderflow.sandbox.broker import create_topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka_semantics]

OUT_OF_ORDER_SEQUENCE = 45


def unique(name: str) -> str:
    return f"conf-{name}-{time.monotonic_ns()}"


async def read_all(bootstrap: str, topic: str, seconds: float = 2.0) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[Any] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            fetched = await consumer.getmany(tp, timeout_ms=300)
            records.extend(fetched.get(tp, []))
        return records
    finally:
        await consumer.stop()


async def test_end_offsets_after_a_batch(broker) -> None:
    topic = unique("end")
    await create_topics(broker.bootstrap_servers, [(topic, 1, None)])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=100)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"0", partition=0)
        batch = [await producer.send(topic, str(n).encode(), partition=0) for n in (1, 2, 3)]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        listed = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        await consumer.getmany(tp, timeout_ms=2000)
        fetched_high = consumer.highwater(tp)
    finally:
        await consumer.stop()
    exact = listed == 4
    record_finding(broker, "end offsets after a batch",
                   f"listed {listed}, fetches report {fetched_high}, true end 4")
    assert fetched_high == 4, "the fetches' high watermark is what orderflow reads to"
    assert exact is broker.abilities.exact_end, f"declared exact_end={broker.abilities.exact_end}"


async def test_idempotent_producing(broker) -> None:
    topic = unique("idem")
    await create_topics(broker.bootstrap_servers, [(topic, 1, None)])
    client = AIOKafkaClient(bootstrap_servers=broker.bootstrap_servers)
    await client.bootstrap()
    try:
        client.add_topic(topic)
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(TopicPartition(topic, 0))
        init = await client.send(leader, InitProducerIdRequest(transactional_id=None,
                                                               transaction_timeout_ms=60_000))

        def batch(sequence: int) -> bytes:
            builder = DefaultRecordBatchBuilder(
                magic=2, compression_type=0, is_transactional=0, producer_id=init.producer_id,
                producer_epoch=init.producer_epoch, base_sequence=sequence, batch_size=1 << 16)
            builder.append(0, timestamp=int(time.time() * 1000), key=b"k", value=b"v", headers=[])
            return bytes(builder.build())

        codes = []
        for sequence in (0, 0, 5):  # a batch, the same batch resent, a gap
            answer = await client.send(leader, ProduceRequest(
                transactional_id=None, required_acks=-1, timeout=10_000,
                topics=[(topic, [(0, batch(sequence))])]))
            codes.append(answer.topics[0][1][0][1])
    finally:
        await client.close()
    kept = len(await read_all(broker.bootstrap_servers, topic))
    idempotent = init.producer_id >= 0 and kept == 1 and codes[2] == OUT_OF_ORDER_SEQUENCE
    record_finding(broker, "idempotent producing",
                   f"producer id {init.producer_id}; a resent batch kept {kept}x; a sequence gap "
                   f"answered {codes[2]} ({'refused' if codes[2] else 'accepted'})")
    assert idempotent is broker.abilities.idempotence, \
        f"declared idempotence={broker.abilities.idempotence}"


async def test_compaction_with_tombstones(broker) -> None:
    topic = unique("compact")
    # As eager as a topic may be configured: the log cleaner's own pace is the broker's.
    await create_topics(broker.bootstrap_servers, [(topic, 1, {
        "cleanup.policy": "compact", "segment.ms": "100", "min.compaction.lag.ms": "0",
        "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"})])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        for key, value in ((b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2"), (b"b", None), (b"c", b"c1")):
            await producer.send_and_wait(topic, value, key=key, partition=0)
        compacted: list[Any] = []
        # A broker declared without compaction is given a few seconds to show otherwise.
        deadline = time.monotonic() + (30 if broker.abilities.compaction else 5)
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            # A later write rolls the segment, which is when Kafka's cleaner may take it.
            await producer.send_and_wait(topic, b"roll", key=b"roll", partition=0)
            compacted = await read_all(broker.bootstrap_servers, topic, seconds=1.0)
            if not any(r.value == b"a1" for r in compacted):
                break
    finally:
        await producer.stop()
    by_offset = {r.offset: (r.key, r.value) for r in compacted}
    removed_old = not any(value == b"a1" for _, value in by_offset.values())
    offsets_kept = by_offset.get(2) == (b"a", b"a2") and by_offset.get(4) == (b"c", b"c1")
    record_finding(broker, "compaction", (
        f"old versions removed: {'yes' if removed_old else 'no'}; offsets of what "
        f"stays unchanged: {'yes' if offsets_kept else 'no'}; "
        f"tombstone {'kept' if (1, b'b') in [(o, k) for o, (k, _) in by_offset.items()] else 'gone'}"))
    assert offsets_kept, by_offset
    assert removed_old is broker.abilities.compaction, f"declared compaction={broker.abilities.compaction}"


async def test_topic_creation_refusals_and_configs(broker) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        replicated = await admin.create_topics([NewTopic(unique("rf"), 1, 99)])
        policy = await admin.create_topics([NewTopic(unique("policy"), 1, 1,
                                                     topic_configs={"cleanup.policy": "nonsense"})])
        plain = unique("configs")
        await admin.create_topics([NewTopic(plain, 1, 1)])
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, plain)])
    finally:
        await admin.close()
    rf_code = replicated.topic_errors[0][1]
    policy_code = policy.topic_errors[0][1]
    keys = {entry[0] for answer in described for resource in answer.resources for entry in resource[4]}
    defaults = {"cleanup.policy", "retention.ms", "min.insync.replicas"} <= keys
    record_finding(broker, "topic-creation refusals",
                   f"replication factor 99: code {rf_code}; cleanup.policy=nonsense: code {policy_code}")
    record_finding(broker, "DescribeConfigs", f"{len(keys)} keys for a topic created with none"
                   f"{' (defaults included)' if defaults else ''}")
    assert (rf_code != 0 and policy_code != 0) is broker.abilities.replication
    assert defaults is broker.abilities.configs


async def test_group_join_time(broker) -> None:
    topic = unique("join")
    await create_topics(broker.bootstrap_servers, [(topic, 2, None)])
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap_servers,
                                group_id=topic, session_timeout_ms=6_000,
                                heartbeat_interval_ms=1_000, enable_auto_commit=False)
    began = time.monotonic()
    await consumer.start()
    try:
        while not consumer.assignment() and time.monotonic() - began < 60:
            await consumer.getmany(timeout_ms=100)
        took = time.monotonic() - began
    finally:
        await consumer.stop()
    record_finding(broker, "group join", f"{took:.1f} s for one consumer (session timeout 6 s)")
    assert consumer.assignment() is not None


MEMBER = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer
async def main():
    c = AIOKafkaConsumer(sys.argv[2], bootstrap_servers=sys.argv[1], group_id=sys.argv[2],
                         session_timeout_ms=6000, heartbeat_interval_ms=1000,
                         enable_auto_commit=False)
    await c.start()
    while True:
        await c.getmany(timeout_ms=200)
        if c.assignment():
            print("joined", flush=True)
asyncio.run(main())
"""


async def test_a_member_that_died_is_dropped_at_its_session_end(broker) -> None:
    """Another process joins the group and is SIGKILLed: does the survivor get its
    partitions once the dead member's session (6 s) ends?"""
    topic = unique("evict")
    await create_topics(broker.bootstrap_servers, [(topic, 4, None)])
    survivor = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap_servers, group_id=topic,
                                session_timeout_ms=6_000, heartbeat_interval_ms=1_000,
                                enable_auto_commit=False)
    await survivor.start()
    member = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MEMBER, broker.bootstrap_servers, topic,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(survivor.assignment()) != 2 and time.monotonic() < deadline:
            await survivor.getmany(timeout_ms=200)
        shared = len(survivor.assignment()) == 2
        member.kill()
        await member.wait()
        killed = time.monotonic()
        while len(survivor.assignment()) != 4 and time.monotonic() - killed < 30:
            await survivor.getmany(timeout_ms=200)
        took = time.monotonic() - killed
        evicted = len(survivor.assignment()) == 4
    finally:
        if member.returncode is None:
            member.kill()
            await member.wait()
        await survivor.stop()
    record_finding(broker, "a member that died", (
        f"its partitions handed to the survivor after {took:.1f} s" if evicted
        else "never dropped (within 30 s): the group stalls") + (
        "" if shared else " (the group never shared its partitions)"))
    assert evicted is broker.abilities.evicts_dead_members, \
        f"declared evicts_dead_members={broker.abilities.evicts_dead_members}"
