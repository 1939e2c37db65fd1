"""Control-topic residue: how long a replica's start-up read of the control topic takes with a
year of residue, as the topic would be without the clean-up and with it.

    python -m bench.control_residue [--orders-a-day 10000] [--repeat 3]   (or: make bench-control)

The scenario (every figure a flag): `--orders-a-day` Smake orders, each announced by
`--deliveries-per-order` webhook deliveries; `--unserved-share` of the deliveries name
nothing any replica follows (repeats after a pair ended, orders of another shop), so nobody
serves their hint; `--replays-a-day` dead letters replayed, kept `--dlq-retention-days`.

As a compacted Kafka topic holds it (the embedded broker does not compact, so the records
are written as compaction would leave them):

- without the clean-up: every unserved hint of the year (their values: nobody removes
  them), every replay marker of the year, and the tombstones of the last day's served hints
  (Kafka keeps a tombstone `delete.retention.ms`, a day by default);
- with it: the tombstones of the last day's served and swept hints, the hints of the last
  `HINT_MAX_AGE_S` not served yet, and the markers of the letters still kept.

Each round times `ControlReader.start()` (the read to the end that a replica does before
any vendor call) on each topic, with a raw consume of the same topic as the ceiling. Medians
go to a table and to `bench/results/control-residue-latest.json`. Nothing here asserts a
timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderflow.config.settings import KafkaSettings, LogSettings, Settings, TopicSettings
from orderflow.consumer.control import ControlReader
from orderflow.consumer.jobs import JobTable
from orderflow.consumer.logging import configure_logging
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.ports import HintResult
from orderflow.contracts import control
from orderflow.contracts.control import HINT_MAX_AGE_S
from orderflow.contracts.events import Vendor
from orderflow.sandbox.broker import chosen_broker, create_topics

RESULTS = Path(__file__).parent / "results"
DAY = 86_400.0


Record = tuple[bytes, bytes | None, float]  # key, value, written at


def topic_contents(args: argparse.Namespace, cleaned: bool, now: float) -> list[Record]:
    deliveries_a_day = int(args.orders_a_day * args.deliveries_per_order)
    unserved_a_day = int(deliveries_a_day * args.unserved_share)
    records: list[Record] = []
    # The last day's tombstones: served hints (and, with the clean-up, swept ones).
    tombstones = deliveries_a_day if cleaned else deliveries_a_day - unserved_a_day
    records.extend((control.hint_key("smake", f"{n:032x}"), None, now - DAY * n / tombstones)
                   for n in range(tombstones))
    if cleaned:
        recent = int(unserved_a_day * HINT_MAX_AGE_S / DAY) + 1
        hints = [(now - HINT_MAX_AGE_S * n / recent, f"{n + 10**9:032x}") for n in range(recent)]
        markers = int(args.replays_a_day * args.dlq_retention_days)
    else:
        year = unserved_a_day * 365
        hints = [(now - 365 * DAY * n / year, f"{n + 10**9:032x}") for n in range(year)]
        markers = int(args.replays_a_day * 365)
    for written, digest in hints:
        hint = control.Hint(at=written, vendor=Vendor.SMAKE, vendor_order_ref=digest[-8:],
                            event="order.completed", delivery=digest)
        records.append((hint.key(), hint.model_dump_json().encode(), written))
    for n in range(markers):
        marker = control.Replayed(at=now, topic="orders.created.dlq", partition=n % 6, offset=n,
                                  to_topic="orders.created", to_partition=0, to_offset=n)
        records.append((marker.key(), marker.model_dump_json().encode(), now))
    records.sort(key=lambda record: record[2])  # a topic holds them in the order written
    return records


def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "enable.idempotence": False,
                         "queue.buffering.max.messages": 500_000})
    for key, value, written in records:
        while True:
            try:
                producer.produce(topic, value, key=key, partition=0, timestamp=int(written * 1000))
                break
            except BufferError:
                producer.poll(0.2)
    if producer.flush(300):
        raise RuntimeError("could not write the control topic")


class _NoEngine:
    """The reader at start-up commands the engine (pauses, hints) and asks the partition
    owner what it owns; here it owns no partition."""

    table = JobTable()

    @staticmethod
    def open_partitions() -> list[int]:
        return []

    def follows(self, vendor: Vendor) -> bool:
        return True

    def pause(self, vendor: Vendor) -> bool:
        return True

    def resume(self, vendor: Vendor) -> bool:
        return True

    def look_now(self, vendor: Vendor, order_id: str | None, ref: str | None) -> HintResult:
        return HintResult.NOT_HERE


async def time_reader(bootstrap: str, topic: str) -> float:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, enable_idempotence=False),
                        topics=TopicSettings(control=topic))
    engine = _NoEngine()
    reader = ControlReader(settings, engine, engine, None, None,  # type: ignore[arg-type]
                           Metrics(process_collectors=False))
    began = time.monotonic()
    await reader.start()
    took = time.monotonic() - began
    await reader.stop()
    return took


async def time_raw(bootstrap: str, topic: str) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    began = time.monotonic()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            await consumer.getmany(tp, timeout_ms=1000, max_records=500)
        return time.monotonic() - began
    finally:
        await consumer.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    now = time.time()
    results: dict[str, Any] = {"scenario": {k: v for k, v in vars(args).items() if k != "repeat"}}
    with chosen_broker() as broker:
        for name, cleaned in (("without_cleanup", False), ("with_cleanup", True)):
            topic = f"residue-{name}-{int(now)}"
            await create_topics(broker.bootstrap_servers, [(topic, 1, {"cleanup.policy": "compact"})])
            records = topic_contents(args, cleaned, now)
            print(f"{name}: writing {len(records):,} records ...", flush=True)
            await asyncio.to_thread(produce, broker.bootstrap_servers, topic, records)
            reader, raw = [], []
            for _ in range(args.repeat):
                raw.append(await time_raw(broker.bootstrap_servers, topic))
                reader.append(await time_reader(broker.bootstrap_servers, topic))
            results[name] = {"records": len(records), "start_up_read_s": statistics.median(reader),
                             "raw_consume_s": statistics.median(raw),
                             "ratio": statistics.median(reader) / statistics.median(raw),
                             "rounds": {"reader_s": reader, "raw_s": raw}}
    return results


def main(argv: list[str] | None = None) -> int:
    configure_logging(LogSettings(level="CRITICAL"))
    parser = argparse.ArgumentParser(prog="python -m bench.control_residue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders-a-day", type=int, default=10_000)
    parser.add_argument("--deliveries-per-order", type=float, default=3.0)
    parser.add_argument("--unserved-share", type=float, default=0.05)
    parser.add_argument("--replays-a-day", type=float, default=10.0)
    parser.add_argument("--dlq-retention-days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "control-residue-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'control topic':<18} {'records':>10} {'start-up read':>14} {'raw consume':>12} {'ratio':>6}")
    for name in ("without_cleanup", "with_cleanup"):
        r = results[name]
        print(f"{name:<18} {r['records']:>10,} {r['start_up_read_s']:>13.2f}s "
              f"{r['raw_consume_s']:>11.2f}s {r['ratio']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
