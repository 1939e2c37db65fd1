"""Hostile records on orderflow's own topics (tracking and control), through the real
restore and the real control reader: what a migration script, a tool, or an older or newer
release with produce rights could leave there.

The records are written before the service starts (a producer that is not orderflow's);
then the service is started as `orderflow run` builds it, restores every tracking
partition and reads the control topic whole. Each tracking key has one record, tagged:
- `valid`: a record as this release writes it (most of them finished pairs, some active):
  its pair must be in the job table afterwards;
- `hostile`: a named kind that no release writes (nesting past the recursion limit, a
  400-digit time, `1e999`, NaN, an object as the vendor's id, wrong types, bad UTF-8, a key
  naming another pair, ...): skipped and counted, never a crash;
- `either`: random mutations of a valid record (bytes flipped, cut, spliced): in the table
  or skipped, one or the other.

Fails on a crash (a critical task died, /healthz would say stuck, start-up raised), a
stall (not ready within `stall_after_s`), or a count that does not add up (tracking records
kept + skipped = keyed records; every valid one kept, every hostile one skipped).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fuzz.intake import fuzz_settings, problem_lines
from fuzz.intake import produce as produce_records
from fuzz.records import FuzzRecord, mutate
from orderflow.consumer.app import Application
from orderflow.consumer.jobs import Job, Phase, tracking_key
from orderflow.consumer.tracking_record import encode_job
from orderflow.contracts import control
from orderflow.contracts.events import Order, Vendor, VendorStatus
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, prefixed_topics
from orderflow.sandbox.samples import sample_orders

PARTITIONS = 4
Say = Callable[[str], None]
Mutation = Callable[[random.Random, dict[str, Any]], bytes]


# ----------------------------------------------------------------------------- tracking


def _valid_job(rng: random.Random, order: Order, n: int) -> Job:
    vendor = rng.choice(list(Vendor))
    now = 1_765_000_000.0 + n
    if rng.random() < 0.97:  # most of a long history: finished pairs
        return Job(order_id=order.order_id, vendor=vendor, partition=0,
                   source_event_id=f"e-{n}", phase=Phase.DONE, status=VendorStatus.COMPLETED,
                   vendor_order_ref=str(n), created_at=now, due_at=now, finished_at=now)
    return Job(order_id=order.order_id, vendor=vendor, partition=0, source_event_id=f"e-{n}",
               order=order, phase=Phase.POLL, status=VendorStatus.SUBMITTED,
               vendor_order_ref=str(n), created_at=now, due_at=now + 3_600, intent_at=now)


def _set(name: str, raw: str) -> Mutation:
    """The field set to `raw` JSON text (which json.dumps could not write: 1e999, NaN)."""
    def build(rng: random.Random, data: dict[str, Any]) -> bytes:
        marker = "\u0000MARK\u0000"
        return json.dumps({**data, name: marker}).replace(json.dumps(marker), raw).encode()
    return build


def _value(name: str, value: Any) -> Mutation:
    return lambda rng, data: json.dumps({**data, name: value}).encode()


def _without(name: str) -> Mutation:
    return lambda rng, data: json.dumps({k: v for k, v in data.items() if k != name}).encode()


TRACKING_HOSTILE: dict[str, Mutation] = {
    "nesting_100000_deep": lambda rng, data: b"[" * 100_000 + b"]" * 100_000,
    "nesting_in_a_field": _set("vendor_state", "[" * 50_000 + "]" * 50_000),
    "time_of_400_digits": _set("created_at", "9" * 400),
    "time_1e999": _set("due_at", "1e999"),
    "time_nan": _set("finished_at", "NaN"),
    "time_infinity": _set("intent_at", "-Infinity"),
    "time_a_string": _value("created_at", "yesterday"),
    "time_true": _value("due_at", True),
    "attempts_1e999": _set("attempts", "1e999"),
    "attempts_negative": _value("attempts", -1),
    "attempts_a_float": _value("attempts", 2.5),
    "round_of_400_digits": _set("round", "9" * 400),
    "ref_an_object": _value("vendor_order_ref", {"id": 1}),
    "ref_a_list": _value("vendor_order_ref", ["1", "2"]),
    "ref_a_number": _value("vendor_order_ref", 12345),
    "ref_of_a_megabyte": _value("vendor_order_ref", "r" * 1_000_000),
    "state_an_object": _value("vendor_state", {"state": "x"}),
    "order_id_a_number": _value("order_id", 7),
    "source_event_id_missing": _without("source_event_id"),
    "created_at_missing": _without("created_at"),
    "vendor_unknown": _value("vendor", "acme"),
    "phase_unknown": _value("phase", "shipping"),
    "status_unknown": _value("status", "lost"),
    "version_2": _value("v", 2),
    "version_true": _value("v", True),
    "view_a_string": _value("view", "yes"),
    "order_a_list": _value("order", [1, 2, 3]),
    "cancel_a_string": _value("cancel", "c-1"),
    "cancel_without_id": _value("cancel", {"reason": "x"}),
    "cancel_owed_a_string": _value("cancel", {"id": "c", "owed": "yes"}),
    "cancel_reason_of_a_megabyte": _value("cancel", {"id": "c", "reason": "r" * 1_000_000}),
    "order_a_string": _value("order", "{}"),
    "not_an_object": lambda rng, data: json.dumps([data]).encode(),
    "a_bare_number": lambda rng, data: b"1e999",
    "truncated": lambda rng, data: json.dumps(data).encode()[: rng.randrange(1, 40)],
    "not_utf8": lambda rng, data: b"\xff\xfe" + json.dumps(data).encode(),
    # A surrogate encoded as UTF-8 bytes (CESU-8, as some JVM tools write): not UTF-8.
    "surrogate_bytes": lambda rng, data: json.dumps(data).encode().replace(
        b'"order_id": "', b'"order_id": "\xed\xa0\x80', 1),
    "empty": lambda rng, data: b"",
}


HEAVY = frozenset({"nesting_100000_deep", "nesting_in_a_field", "ref_of_a_megabyte",
                   "cancel_reason_of_a_megabyte"})


def tracking_records(count: int, rng: random.Random) -> tuple[list[FuzzRecord], dict[bytes, int]]:
    """`count` tracking records, one per key; and key -> the partition it is written to."""
    orders = [Order.model_validate(e["order"]) for e in sample_orders(50, seed=rng.randrange(1 << 30),
                                                                      prefix="INT")]
    records: list[FuzzRecord] = []
    partitions: dict[bytes, int] = {}
    kinds = list(TRACKING_HOSTILE)
    for n in range(count):
        template = rng.choice(orders)
        order = template.model_copy(update={"order_id": f"INT-{n}"})
        job = _valid_job(rng, order, n)
        key = tracking_key(job.key)
        partitions[key] = n % PARTITIONS
        roll = rng.random()
        if roll < 0.6:
            records.append(FuzzRecord("valid", "accept", key, encode_job(job)))
        elif roll < 0.85:
            kind = rng.choice(kinds)
            # The heaviest kinds are rare: a few of each make the point.
            if kind in HEAVY and rng.random() < 0.97:
                kind = "attempts_1e999"
            data = json.loads(encode_job(job))
            records.append(FuzzRecord(kind, "dead_letter", key, TRACKING_HOSTILE[kind](rng, data)))
        elif roll < 0.99:
            records.append(FuzzRecord("mutated", "either", key, mutate(rng, encode_job(job))))
        else:
            # A key naming another pair than the record, or no pair at all.
            other = rng.choice([b"smake/INT-other", b"\xff\xfe", b"zakeke/", b"/" * 300])
            if other in partitions:
                other += str(n).encode()
            partitions[other] = n % PARTITIONS
            records.append(FuzzRecord("key_of_another_pair", "dead_letter", other, encode_job(job)))
    return records, partitions


# ----------------------------------------------------------------------------- control


def control_records(count: int, rng: random.Random) -> list[FuzzRecord]:
    """Control records, good and hostile. The good ones change nothing the check depends on:
    retries of orders nobody owns, stale hints, replay markers, and pauses that end resumed."""
    now = time.time()
    good: list[Callable[[int], tuple[bytes, bytes]]] = [
        lambda n: _record(control.Retry(at=now, vendor=Vendor.SMAKE, order_id=f"NOBODY-{n}",
                                        finished_at=1.0, source_event_id="e", order={"x": n})),
        lambda n: _record(control.Hint(at=now - 3_600, vendor=Vendor.SMAKE,
                                       vendor_order_ref=str(n), delivery=f"{n:032x}")),
        lambda n: _record(control.Replayed(at=now, topic="dlq", partition=0, offset=n,
                                           to_topic="in")),
        lambda n: _record(control.Cancel(at=now, order_id=f"NOBODY-{n}", event_id=f"c-{n}",
                                         reason="changed mind")),
    ]
    hostile: list[Callable[[int], tuple[bytes | None, bytes | None]]] = [
        lambda n: (b"pause/smake", b'{"kind":"pause","at":1e999,"vendor":"smake","paused":true}'),
        lambda n: (b"pause/smake", json.dumps({"kind": "pause", "at": now, "vendor": "smake",
                                               "paused": True, "note": "n" * 600}).encode()),
        lambda n: (b"pause/acme", json.dumps({"kind": "pause", "at": now, "vendor": "acme",
                                              "paused": True}).encode()),
        lambda n: (b"pause/smake", b"[" * 100_000),
        lambda n: (f"hint/smake/{n}".encode(), json.dumps({
            "kind": "hint", "at": now, "vendor": "smake", "vendor_order_ref": {"id": n}}).encode()),
        lambda n: (f"hint/smake/{n}".encode(), json.dumps({
            "kind": "hint", "at": now, "vendor": "smake", "vendor_order_ref": "r" * 5_000}).encode()),
        lambda n: (f"retry/smake/{n}".encode(), json.dumps({
            "kind": "retry", "at": now, "vendor": "smake", "order_id": f"X{n}", "finished_at": "9" * 400,
            "source_event_id": "e"}).encode()),
        lambda n: (f"retry/smake/{n}".encode(), b'{"kind":"retry","at":1,"vendor":"smake","order_id":"A",'
                   b'"finished_at":1,"source_event_id":"e","order":' + b'{"a":' * 10_000 + b"1"
                   + b"}" * 10_000 + b"}"),
        lambda n: (f"replayed/dlq/0/{n}".encode(), json.dumps({
            "kind": "replayed", "at": now, "topic": "dlq", "partition": -1, "offset": 2**70,
            "to_topic": "in"}).encode()),
        lambda n: (None, b"\xff\xfe\xfd"),
        lambda n: (b"\xff", b'{"kind":"nothing"}'),
        lambda n: (b"hint/smake/x", b'{"kind":"hint","at":NaN,"vendor":"smake"}'),
        lambda n: (b"pause/smake", b""),
        lambda n: (f"cancel/X{n}".encode(), json.dumps({
            "kind": "cancel", "at": now, "order_id": f"X{n}", "event_id": "e",
            "reason": "r" * 600}).encode()),
        lambda n: (f"cancel/X{n}".encode(), json.dumps({
            "kind": "cancel", "at": now, "order_id": n, "event_id": "e"}).encode()),
        lambda n: (f"cancel/X{n}".encode(), json.dumps({
            "kind": "cancel", "at": "1e999", "order_id": f"X{n}"}).encode()),
    ]
    records = []
    for n in range(count):
        if rng.random() < 0.3:
            key, value = rng.choice(good)(n)
            records.append(FuzzRecord("good_control", "accept", key, value))
        elif rng.random() < 0.8:
            key_or_none, raw = rng.choice(hostile)(n)
            records.append(FuzzRecord("hostile_control", "dead_letter", key_or_none, raw))
        else:
            key, value = rng.choice(good)(n)
            records.append(FuzzRecord("mutated_control", "either", key, mutate(rng, value)))
    # Whatever came before, the vendors end resumed, as an operator's last word.
    for vendor in Vendor:
        records.append(FuzzRecord("good_control", "accept", *_record(
            control.Pause(at=now, vendor=vendor, paused=False))))
    return records


def _record(record: control.Pause | control.Retry | control.Hint | control.Replayed
            | control.Cancel) -> tuple[bytes, bytes]:
    return record.key(), record.model_dump_json().encode()


# ----------------------------------------------------------------------------- the run


@dataclass
class InternalFuzzReport:
    tracking: int = 0
    control: int = 0
    kept: int = 0
    skipped_tracking: int = 0
    skipped_control: int = 0
    ready_after_s: float = 0.0
    seconds: float = 0.0
    crashes: list[str] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not (self.crashes or self.stalls or self.violations)

    def render(self) -> str:
        lines = [
            f"internal records fuzz: {self.tracking + self.control} records "
            f"({self.tracking} tracking, {self.control} control); tracking: {self.kept} kept, "
            f"{self.skipped_tracking} skipped; control: {self.skipped_control} skipped; "
            f"ready after {self.ready_after_s:.1f} s; {len(self.crashes)} crashes, "
            f"{len(self.stalls)} stalls, {self.seconds:.1f} s",
            "  tracking by kind (kept/skipped):",
        ]
        for kind in sorted(self.by_kind):
            counts = self.by_kind[kind]
            lines.append(f"    {kind:<28} {counts['kept']:>6} / {counts['skipped']:<6}")
        lines.extend(problem_lines(self.crashes, self.stalls, self.violations))
        return "\n".join(lines)


async def run_internal_fuzz(count: int, seed: int = 1, *, stall_after_s: float = 120.0,
                            say: Say = print, broker: SandboxBroker | None = None
                            ) -> InternalFuzzReport:
    """`count` records: four fifths on the tracking topic, one fifth on the control topic."""
    report = InternalFuzzReport()
    started = time.monotonic()
    rng = random.Random(seed)
    say(f"generating {count} tracking and control records (seed {seed}) ...")
    tracking, partitions = tracking_records(count * 4 // 5, rng)
    controls = control_records(count - len(tracking), rng)
    report.tracking, report.control = len(tracking), len(controls)
    own_broker = broker is None
    running = broker if broker is not None else chosen_broker().start()
    if running.abilities.compaction:
        # A broker that compacts refuses a record without a key on a compacted topic, as
        # Kafka does: such records cannot reach orderflow there.
        controls = [record for record in controls if record.key is not None]
        report.control = len(controls)
    try:
        await _run(running.bootstrap_servers, tracking, partitions, controls, seed,
                   stall_after_s, say, report)
    finally:
        if own_broker:
            running.stop()
    report.seconds = time.monotonic() - started
    return report


async def _run(bootstrap: str, tracking: list[FuzzRecord], partitions: dict[bytes, int],
               controls: list[FuzzRecord], seed: int, stall_after_s: float, say: Say,
               report: InternalFuzzReport) -> None:
    topics = prefixed_topics(f"internal{seed}-{int(time.time() * 1000) % 10**8}")
    await create_topics(bootstrap, [
        (topics.orders_created, PARTITIONS, None), (topics.status, PARTITIONS, None),
        (topics.print_files_ready, PARTITIONS, None), (topics.dead_letter, PARTITIONS, None),
        (topics.tracking, PARTITIONS, {"cleanup.policy": "compact"}),
        (topics.control, 1, {"cleanup.policy": "compact"})])
    say(f"producing {len(tracking)} tracking and {len(controls)} control records ...")
    by_partition: dict[int, list[FuzzRecord]] = {}
    for record in tracking:
        by_partition.setdefault(partitions[record.key or b""], []).append(record)
    for partition, records in by_partition.items():
        await asyncio.to_thread(produce_records, bootstrap, topics.tracking, records,
                                partition=partition)
    await asyncio.to_thread(produce_records, bootstrap, topics.control, controls)
    settings = fuzz_settings(bootstrap, topics)
    # Real adapters, so restored jobs are queued in their lanes and indexed by the vendor's
    # id; pointed at a port where nothing listens (this is about reading, not vendors).
    nowhere = "http://127.0.0.1:9"
    settings = settings.model_copy(update={
        name: getattr(settings, name).model_copy(update={"base_url": nowhere})
        for name in ("zakeke", "smake", "reevoo")})
    app = Application(settings)
    say("starting the service on them ...")
    began = time.monotonic()
    try:
        await asyncio.wait_for(app.start(), stall_after_s)
    except TimeoutError:
        report.stalls.append(f"start-up (the control topic's read) took over {stall_after_s:.0f} s")
        await app.stop()
        return
    except Exception as exc:
        report.crashes.append(f"start-up raised {type(exc).__name__}: {exc}"[:300])
        await app.stop()
        return
    try:
        while not app.readiness()[0]:
            if app.critical.failure is not None:
                report.crashes.append(app.critical.failure)
                return
            if time.monotonic() - began > stall_after_s:
                report.stalls.append(f"not ready within {stall_after_s:.0f} s: {app.readiness()[1]}")
                return
            await asyncio.sleep(0.2)
        report.ready_after_s = time.monotonic() - began
        await asyncio.sleep(1.0)  # the control reader and the first scheduler turns run on them
        if app.critical.failure is not None:
            report.crashes.append(app.critical.failure)
        healthy, detail = app.health()
        if not healthy:
            report.crashes.append(f"/healthz would answer 503: {detail}")
        _account(app, tracking, partitions, topics.tracking, topics.control, report)
    finally:
        await app.stop()


def _account(app: Application, tracking: list[FuzzRecord], partitions: dict[bytes, int],
             tracking_topic: str, control_topic: str, report: InternalFuzzReport) -> None:
    skipped = {sample.labels["topic"]: int(sample.value)
               for metric in app.metrics.internal_records_skipped.collect()
               for sample in metric.samples if sample.name.endswith("_total")}
    report.skipped_tracking = skipped.get(tracking_topic, 0)
    report.skipped_control = skipped.get(control_topic, 0)
    for record in tracking:
        assert record.key is not None
        partition = partitions[record.key]
        try:
            vendor, _, order_id = record.key.decode().partition("/")
            kept = app.table.knows(partition, (order_id, Vendor(vendor)))
        except ValueError:
            kept = False
        report.by_kind.setdefault(record.kind, Counter())["kept" if kept else "skipped"] += 1
        if record.expect == "accept" and not kept:
            report.violations.append(f"a valid record of {record.key!r} was not restored")
        if record.expect == "dead_letter" and kept:
            report.violations.append(f"a hostile record ({record.kind}) of {record.key!r} was restored")
        report.kept += kept
    if report.kept + report.skipped_tracking != len(tracking):
        report.violations.append(f"tracking counts do not add up: {report.kept} kept + "
                                 f"{report.skipped_tracking} skipped != {len(tracking)} records")
    if any(app.scheduler.is_paused(vendor) for vendor in Vendor):
        report.violations.append("a vendor is held though its last pause record resumed it")
    if report.skipped_control == 0:
        report.violations.append("no control record was counted as skipped")
