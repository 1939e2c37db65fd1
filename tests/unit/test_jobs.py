"""Jobs: the tracking record and its key, the job table and the due-time queue."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from testkit import FIXTURES

from orderflow.consumer.jobs import (
    DueQueue,
    Job,
    JobKey,
    JobTable,
    Phase,
    parse_tracking_key,
    tracking_key,
)
from orderflow.consumer.tracking_record import (
    RECORD_VERSION,
    SkippedRecord,
    TrackingReplay,
    decode_job,
    encode_job,
    finished_at_of,
    read_tracking_record,
    record_head,
)
from orderflow.contracts.events import Order, OrderCreated, Vendor, VendorStatus

ORDER = OrderCreated.model_validate_json((FIXTURES / "order-created.json").read_text()).order


def job(order_id: str = "SHOP-100234", vendor: Vendor = Vendor.SMAKE, partition: int = 3,
        order: Order | None = ORDER, **fields: object) -> Job:
    base = Job(order_id=order_id, vendor=vendor, partition=partition,
               source_event_id="0b6f3c1e-8d7a-4c1e-9a53-2f1f0d7c9e01", order=order,
               created_at=1_700_000_000.25, due_at=1_700_000_005.5)
    return replace(base, **fields)  # type: ignore[arg-type]


def finished(order_id: str = "SHOP-1", vendor: Vendor = Vendor.REEVOO, partition: int = 3,
             at: float = 100.0) -> Job:
    return job(order_id, vendor, partition, order=None, phase=Phase.DONE,
               status=VendorStatus.COMPLETED, finished_at=at)


# ----------------------------------------------------------------------------- the record


def test_active_job_round_trips_through_its_record_with_the_order() -> None:
    active = job(phase=Phase.POLL, status=VendorStatus.IN_PROGRESS, vendor_order_ref="137",
                 vendor_state="preparing", attempts=2, polls_without_change=3)
    restored = decode_job(encode_job(active), partition=3)
    assert json.loads(encode_job(restored)) == json.loads(encode_job(active))
    assert restored.read_order() == ORDER
    assert restored.read_order().lines[0].unit_price == ORDER.lines[0].unit_price


def test_a_job_keeps_its_order_as_json_and_builds_the_model_on_demand() -> None:
    active = job()
    assert isinstance(active.order_json, bytes)
    assert json.loads(active.order_json) == ORDER.model_dump(mode="json", exclude_none=True)
    assert active.read_order() == ORDER  # nothing lost by leaving the nulls out
    first, second = active.read_order(), active.read_order()
    assert first == second == ORDER and first is not second, "built per call, never kept"
    assert "order" not in Job.__slots__


def test_read_order_refuses_a_job_without_an_order_or_with_an_unreadable_one() -> None:
    with pytest.raises(ValueError, match="holds no order"):
        finished().read_order()
    with pytest.raises(ValueError, match="validation error"):
        job(order_json=b'{"order_id":"A"}').read_order()


def test_the_record_is_the_same_as_before_orders_were_held_as_json() -> None:
    """The record is what `json.dumps` made of the job with `order.model_dump(mode="json")`
    (before the order was held as JSON), less the order's nulls and with the intent to
    create: the same members in the same order, the same values. (Older records still
    restore: below.)"""
    active = job(phase=Phase.POLL, status=VendorStatus.IN_PROGRESS, vendor_order_ref="137",
                 vendor_state="preparing", attempts=1, polls_without_change=2)
    legacy = {
        "v": RECORD_VERSION, "order_id": active.order_id, "vendor": "smake",
        "source_event_id": active.source_event_id, "phase": "poll", "status": "in_progress",
        "vendor_order_ref": "137", "vendor_state": "preparing", "created_at": active.created_at,
        "due_at": active.due_at, "attempts": 1, "polls_without_change": 2, "finished_at": None,
        "intent_at": None,
        "order": ORDER.model_dump(mode="json", exclude_none=True),
    }
    record = encode_job(active)
    assert json.loads(record) == legacy
    assert list(json.loads(record)) == list(legacy)
    assert record == json.dumps(legacy, separators=(",", ":")).encode(), "byte for byte (ASCII order)"


def test_a_record_written_before_orders_were_held_as_json_restores() -> None:
    """A record exactly as written by the release that kept `Order` models in jobs (the
    fixture is its output, with a non-ASCII name escaped as json.dumps does)."""
    raw = (FIXTURES / "tracking-record-v1-active.json").read_bytes()
    restored = read_tracking_record(b"smake/SHOP-100234", raw, partition=3)
    assert (restored.phase, restored.status, restored.vendor_order_ref, restored.vendor_state,
            restored.attempts, restored.polls_without_change, restored.created_at,
            restored.due_at) == (Phase.POLL, VendorStatus.IN_PROGRESS, "137", "preparing", 2, 3,
                                 1_700_000_000.25, 1_700_000_005.5)
    order = restored.read_order()
    assert order.customer.first_name == "Zoë"
    assert order == ORDER.model_copy(update={"customer": ORDER.customer.model_copy(
        update={"first_name": "Zoë"})})
    # Written back unchanged, but for the intent it is now taken to carry.
    assert json.loads(encode_job(restored)) == {**json.loads(raw), "intent_at": restored.created_at}
    assert finished_at_of(b"smake/SHOP-100234", encode_job(restored)) is None

    done = (b'{"v":1,"order_id":"SHOP-100234","vendor":"reevoo","source_event_id":"0b6f3c1e-8d7a-'
            b'4c1e-9a53-2f1f0d7c9e01","phase":"done","status":"completed","vendor_order_ref":"R-9",'
            b'"vendor_state":"completed","created_at":1700000000.25,"due_at":1700000100.0,'
            b'"attempts":0,"polls_without_change":0,"finished_at":1700000100.0,"order":null}')
    assert finished_at_of(b"reevoo/SHOP-100234", done) == 1_700_000_100.0
    restored_done = decode_job(done, partition=3)
    assert restored_done.order_json is None
    assert encode_job(restored_done) == done.replace(b',"order":null}',
                                                     b',"intent_at":1700000000.25,"order":null}')


def test_new_job_round_trips() -> None:
    fresh = job()
    assert fresh.phase is Phase.SUBMIT and fresh.status is None
    assert decode_job(encode_job(fresh), partition=3) == fresh


def test_finished_job_record_carries_no_order() -> None:
    done = finished(at=1_700_000_100.0)
    record = json.loads(encode_job(done))
    assert record["order"] is None
    assert record["v"] == RECORD_VERSION
    restored = decode_job(encode_job(done), partition=3)
    assert restored == done and restored.order_json is None and restored.finished_at == 1_700_000_100.0


def test_money_survives_the_record_exactly() -> None:
    """An amount that str(Decimal) would write as 1E-7 must still read back."""
    order = ORDER.model_copy(update={"total": Decimal("0.0000001")})
    active = job(order=order)
    restored = decode_job(encode_job(active), partition=3)
    assert restored.read_order().total == Decimal("0.0000001")
    assert json.loads(encode_job(active))["order"]["total"] == "0.0000001"


def test_the_partition_comes_from_where_the_record_was_read() -> None:
    assert decode_job(encode_job(job(partition=3)), partition=7).partition == 7


def test_an_unknown_record_version_is_refused() -> None:
    record = json.loads(encode_job(job()))
    record["v"] = RECORD_VERSION + 1
    with pytest.raises(ValueError, match="unknown tracking record version"):
        decode_job(json.dumps(record).encode(), partition=0)


def test_a_job_is_immutable_and_its_key_is_built_once() -> None:
    active = job()
    with pytest.raises(AttributeError):
        active.due_at = 5.0  # type: ignore[misc]
    later = replace(active, due_at=99.0)
    assert later.key == active.key == ("SHOP-100234", Vendor.SMAKE)
    assert "key" not in json.loads(encode_job(active))


# ----------------------------------------------------------------------------- the key


@pytest.mark.parametrize("order_id", ["SHOP-100234", "a/b", "/leading", "trailing/", "a//b/c",
                                      "ünïcödé €", "x" * 64])
@pytest.mark.parametrize("vendor", list(Vendor))
def test_tracking_key_round_trips_odd_order_ids(order_id: str, vendor: Vendor) -> None:
    key: JobKey = (order_id, vendor)
    raw = tracking_key(key)
    assert raw == f"{vendor.value}/{order_id}".encode()
    assert parse_tracking_key(raw) == key


def test_a_key_of_an_unknown_vendor_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_tracking_key(b"acme/SHOP-1")


# ----------------------------------------------------------------------------- the table


def test_table_keeps_active_jobs_whole_and_finished_ones_by_key() -> None:
    table = JobTable()
    table.add_partition(3)
    active = job()
    table.put(active)
    assert table.get(3, active.key) is active
    assert table.knows(3, active.key)
    assert table.active_jobs(3) == [active]
    assert table.counts() == (1, 0)

    table.put(replace(active, phase=Phase.DONE, order_json=None, finished_at=50.0))
    assert table.get(3, active.key) is None
    assert table.knows(3, active.key), "a finished pair is remembered so a repeat makes no new job"
    assert table.active_jobs(3) == []
    assert table.counts() == (0, 1)


def test_knows_is_per_partition() -> None:
    table = JobTable()
    table.add_partition(1)
    table.add_partition(2)
    table.put(job(partition=1))
    assert table.knows(1, ("SHOP-100234", Vendor.SMAKE))
    assert not table.knows(2, ("SHOP-100234", Vendor.SMAKE))
    assert not table.knows(1, ("SHOP-100234", Vendor.ZAKEKE))
    assert not table.knows(9, ("SHOP-100234", Vendor.SMAKE))


def test_put_into_a_partition_not_owned_is_ignored() -> None:
    table = JobTable()
    table.put(job(partition=5))
    table.put(finished(partition=5))
    assert table.counts() == (0, 0)
    assert not table.knows(5, ("SHOP-100234", Vendor.SMAKE))


def test_expired_finished_and_forget() -> None:
    table = JobTable()
    table.add_partition(0)
    table.put(finished("old", partition=0, at=100.0))
    table.put(finished("edge", partition=0, at=200.0))
    table.put(finished("new", partition=0, at=300.0))
    table.put(job("active", partition=0))
    assert sorted(table.expired_finished(0, older_than=200.0)) == [("old", Vendor.REEVOO)]
    assert sorted(table.expired_finished(0, older_than=250.0)) == [("edge", Vendor.REEVOO),
                                                                   ("old", Vendor.REEVOO)]
    assert table.expired_finished(7, older_than=1e12) == []
    table.forget(0, ("old", Vendor.REEVOO))
    table.forget(0, ("active", Vendor.SMAKE))
    assert not table.knows(0, ("old", Vendor.REEVOO))
    assert not table.knows(0, ("active", Vendor.SMAKE))
    assert table.counts() == (0, 2)
    table.forget(9, ("nothing", Vendor.SMAKE))  # unknown partition: no error


def test_drop_partition_hands_back_its_active_jobs_and_forgets_everything() -> None:
    table = JobTable()
    for partition in (2, 0, 1):
        table.add_partition(partition)
    assert table.partitions() == [0, 1, 2]
    a, b = job("A", partition=1), job("B", partition=1)
    table.put(a)
    table.put(b)
    table.put(finished("C", partition=1))
    table.put(job("D", partition=2))
    assert sorted(j.order_id for j in table.drop_partition(1)) == ["A", "B"]
    assert table.partitions() == [0, 2]
    assert not table.knows(1, ("C", Vendor.REEVOO))
    assert table.counts() == (1, 0)
    assert table.drop_partition(1) == []
    table.put(job("E", partition=1))  # revoked meanwhile: ignored
    assert table.counts() == (1, 0)


def test_add_partition_twice_keeps_what_it_holds() -> None:
    table = JobTable()
    table.add_partition(0)
    table.put(job(partition=0))
    table.add_partition(0)
    assert table.counts() == (1, 0)


def test_a_restored_finished_index_is_adopted_as_it_is() -> None:
    table = JobTable()
    index = {tracking_key(("OLD", Vendor.REEVOO)): 100.0}
    table.add_partition(2, index)
    assert table.knows(2, ("OLD", Vendor.REEVOO))
    assert table.counts() == (0, 1)
    table.put(finished("NEW", partition=2, at=300.0))
    assert index[tracking_key(("NEW", Vendor.REEVOO))] == 300.0, "adopted, not copied"
    assert table.expired_finished(2, older_than=200.0) == [("OLD", Vendor.REEVOO)]


def test_adding_a_restored_index_to_a_partition_held_merges_it() -> None:
    table = JobTable()
    table.add_partition(2)
    table.put(finished("A", partition=2))
    table.put(job("B", partition=2))
    table.add_partition(2, {tracking_key(("C", Vendor.SMAKE)): 5.0})
    assert table.knows(2, ("A", Vendor.REEVOO)) and table.knows(2, ("C", Vendor.SMAKE))
    assert table.counts() == (1, 2)


# ----------------------------------------------------------------------------- restore


def record(j: Job) -> tuple[bytes, bytes]:
    return tracking_key(j.key), encode_job(j)


def replayed(*records: tuple[bytes, bytes | None], partition: int = 3) -> TrackingReplay:
    replay = TrackingReplay(partition)
    for key, value in records:
        assert replay.apply(key, value) is None
    return replay


def test_finished_at_of_reads_a_finished_record_and_none_for_an_unfinished_one() -> None:
    assert finished_at_of(*record(finished("SHOP-1", at=1_700_000_100.5))) == 1_700_000_100.5
    assert finished_at_of(*record(job(phase=Phase.POLL, status=VendorStatus.IN_PROGRESS))) is None
    assert finished_at_of(*record(job())) is None
    no_time = replace(finished(at=0.0), finished_at=None)
    assert finished_at_of(*record(no_time)) == 0.0


_DONE = {"v": 1, "vendor": "smake", "order_id": "SHOP-100234", "source_event_id": "e-1",
         "phase": "done", "status": "completed", "created_at": 1.0, "due_at": 1.0,
         "finished_at": 2.0, "order": None}


def _done(**changes: object) -> bytes:
    return json.dumps({**_DONE, **changes}).encode()


@pytest.mark.parametrize(("value", "reason"), [
    (b"not json", "Expecting value"),
    (b"\xc3\x28 not utf-8", "can't decode"),
    (b"[1, 2]", "not an object but list"),
    (b'{"v": 1, "vendor": "smake", "order_id": "SHOP-100234"}', "unknown phase"),
    (b'{"v": 2}', "unknown tracking record version"),
    (b'{"v": true}', "unknown tracking record version"),
    (_done(phase="lost"), "unknown phase"),
    (_done(order_id="SHOP-999"), "another pair"),
    (_done(vendor="acme"), "unknown vendor"),
    (_done(order_id=7), "order_id is not a string"),
    (_done(finished_at="x"), "finished_at is not a time"),
    (_done(finished_at=[1]), "finished_at is not a time"),
    (_done(status="shipped"), "unknown status"),
    (_done(source_event_id=None), "source_event_id is not a string"),
    # What once stopped every replica on restore (issue: nothing inside can stop it):
    (b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
    (_done(finished_at=10**400), "finished_at is not a time"),
    (_done().replace(b'"finished_at": 2.0', b'"finished_at": 1e999'), "finished_at is not a time"),
    (_done().replace(b'"finished_at": 2.0', b'"finished_at": NaN'), "finished_at is not a time"),
    (_done(attempts=1.5), "attempts is not a count"),
    (_done().replace(b'"due_at": 1.0', b'"attempts": 1e999, "due_at": 1.0'), "attempts is not a count"),
    (_done(attempts=True), "attempts is not a count"),
    (_done(round=-1), "round is not a count"),
    (_done(vendor_order_ref={"id": 1}), "vendor_order_ref is not a string"),
    (_done(vendor_order_ref=["1"]), "vendor_order_ref is not a string"),
    (_done(vendor_state=7), "vendor_state is not a string"),
    (_done(view="yes"), "view is not true or false"),
    (_done(order=[1, 2]), "order is not an object"),
])
def test_finished_at_of_refuses_what_it_cannot_read_with_a_value_error(value: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        finished_at_of(b"smake/SHOP-100234", value)
    with pytest.raises(ValueError, match=reason):
        read_tracking_record(b"smake/SHOP-100234", value, partition=0)


def test_an_unfinished_record_with_a_hostile_field_is_skipped_with_its_offset() -> None:
    """An object as the vendor's id once reached an index on restore and raised TypeError."""
    hostile = json.loads(encode_job(job("A", phase=Phase.POLL, status=VendorStatus.SUBMITTED)))
    hostile["vendor_order_ref"] = {"nested": [1, 2]}
    replay = TrackingReplay(3)
    skipped = replay.apply(b"smake/A", json.dumps(hostile).encode(), offset=41)
    assert skipped == SkippedRecord(b"smake/A", "vendor_order_ref is not a string of 1 to 1024 "
                                    "characters", 41)
    assert list(replay.unfinished_jobs()) == []


def test_read_tracking_record_checks_the_key() -> None:
    key, value = record(job())
    assert read_tracking_record(key, value, partition=5) == job(partition=5)
    with pytest.raises(ValueError, match="another pair"):
        read_tracking_record(b"smake/SHOP-1", value, partition=5)
    incomplete = json.loads(value)
    del incomplete["created_at"]
    with pytest.raises(ValueError, match="created_at is not a time"):
        read_tracking_record(key, json.dumps(incomplete).encode(), partition=5)


def test_replay_keeps_finished_pairs_by_key_and_unfinished_ones_whole() -> None:
    active = job("A", phase=Phase.POLL, status=VendorStatus.IN_PROGRESS, vendor_order_ref="9")
    replay = replayed(record(finished("F", at=50.0)), record(active))
    assert replay.records == 2
    assert replay.finished == {b"reevoo/F": 50.0}
    assert replay.unfinished == 1
    assert list(replay.unfinished_jobs()) == [active]
    assert replay.unfinished == 0, "each raw record is released as it is decoded"


def test_replay_the_latest_record_of_a_key_wins() -> None:
    submitted = job("A")
    polling = replace(submitted, phase=Phase.POLL, status=VendorStatus.SUBMITTED, vendor_order_ref="1")
    done = replace(polling, phase=Phase.DONE, status=VendorStatus.COMPLETED, order_json=None,
                   finished_at=70.0)
    # unfinished -> unfinished: only the later one is decoded
    replay = replayed(record(submitted), record(polling))
    assert list(replay.unfinished_jobs()) == [polling]
    # unfinished -> finished
    replay = replayed(record(submitted), record(polling), record(done))
    assert replay.finished == {b"smake/A": 70.0} and replay.unfinished == 0
    # finished -> unfinished again (a record written back by an older owner, say): latest wins
    replay = replayed(record(done), record(polling))
    assert replay.finished == {} and list(replay.unfinished_jobs()) == [polling]


def test_replay_a_tombstone_forgets_the_pair_and_a_record_after_it_counts_again() -> None:
    active, gone = job("A"), finished("G", at=5.0)
    replay = replayed(record(active), record(gone), (tracking_key(active.key), None),
                      (tracking_key(gone.key), None), (b"reevoo/never-seen", None))
    assert replay.records == 5
    assert replay.finished == {} and replay.unfinished == 0
    replay.apply(*record(gone))
    assert replay.finished == {b"reevoo/G": 5.0}


def test_replay_an_unreadable_record_is_reported_and_forgets_its_pair() -> None:
    replay = replayed(record(job("A")), record(finished("F")))
    skipped = replay.apply(b"smake/A", b"{broken")
    assert isinstance(skipped, SkippedRecord) and skipped.key == b"smake/A"
    assert replay.apply(b"reevoo/F", record(finished("OTHER"))[1]) == SkippedRecord(
        b"reevoo/F", "the record names another pair than its key")
    assert replay.finished == {} and replay.unfinished == 0
    assert replay.apply(None, b"anything") is None, "a record without a key is not ours"
    assert replay.records == 5


def test_replay_an_unfinished_record_with_a_bad_head_is_reported_when_read() -> None:
    bad = json.loads(encode_job(job("A")))
    del bad["created_at"]
    replay = TrackingReplay(3)
    skipped = replay.apply(b"smake/A", json.dumps(bad).encode(), offset=12)
    assert skipped == SkippedRecord(b"smake/A", "created_at is not a time (epoch seconds)", 12)
    assert replay.apply(*record(job("B"))) is None
    assert [j.order_id for j in replay.unfinished_jobs() if isinstance(j, Job)] == ["B"]


def test_replay_keeps_an_order_as_json_without_validating_it() -> None:
    """The order is validated when the job runs (the scheduler ends a job whose order does
    not validate), not on restore; an order that is not even a JSON object is refused here."""
    odd = json.loads(encode_job(job("A")))
    odd["order"] = {"order_id": "A"}
    not_an_object = json.loads(encode_job(job("C")))
    not_an_object["order"] = [1, 2]
    replay = replayed((b"smake/A", json.dumps(odd).encode()), record(job("B")))
    skipped = replay.apply(b"smake/C", json.dumps(not_an_object).encode(), offset=3)
    assert skipped is not None and "not an object" in skipped.reason and skipped.offset == 3
    decoded = {tracking_key(item.key): item for item in replay.unfinished_jobs()
               if isinstance(item, Job)}
    assert json.loads(decoded[b"smake/A"].order_json or b"") == {"order_id": "A"}
    assert set(decoded) == {b"smake/A", b"smake/B"}


def test_replayed_partition_fills_the_table_as_put_would() -> None:
    """The same history, applied record by record with put/forget, gives the same table."""
    history = [record(job("A")), record(finished("B", at=9.0)), record(job("C")),
               record(finished("A", vendor=Vendor.SMAKE, at=10.0)), (b"smake/C", None)]
    replay = replayed(*history, partition=3)
    restored = JobTable()
    restored.add_partition(3, replay.finished)
    for item in replay.unfinished_jobs():
        assert isinstance(item, Job)
        restored.put(item)
    expected = JobTable()
    expected.add_partition(3)
    for raw_key, value in history:
        if value is None:
            expected.forget(3, parse_tracking_key(raw_key))
        else:
            expected.put(decode_job(value, 3))
    assert restored.counts() == expected.counts() == (0, 2)
    for key in [("A", Vendor.SMAKE), ("B", Vendor.REEVOO), ("C", Vendor.SMAKE)]:
        assert restored.knows(3, key) == expected.knows(3, key)


# ----------------------------------------------------------------------------- the due queue


def queued(order_id: str, due_at: float, partition: int = 0) -> Job:
    return job(order_id, partition=partition, due_at=due_at)


def drain(queue: DueQueue, now: float) -> list[Job]:
    popped = []
    while (entry := queue.pop_due(now)) is not None:
        popped.append(entry)
    return popped


def test_due_queue_pops_in_due_order_and_only_when_due() -> None:
    queue = DueQueue()
    for order_id, due in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("d", 40.0)):
        queue.push(queued(order_id, due))
    assert len(queue) == 4
    assert queue.next_due() == 10.0
    assert queue.pop_due(9.99) is None
    assert [j.order_id for j in drain(queue, 30.0)] == ["a", "b", "c"]
    assert queue.next_due() == 40.0 and len(queue) == 1
    last = queue.pop_due(40.0)
    assert last is not None and last.key == ("d", Vendor.SMAKE)
    assert queue.next_due() is None and queue.pop_due(1e12) is None


def test_equal_due_times_go_by_partition_and_key_and_one_pair_twice_is_no_error() -> None:
    queue = DueQueue()
    for order_id in ("third", "first", "second"):
        queue.push(queued(order_id, 5.0))
    twice = queued("first", 5.0)
    queue.push(twice)
    queue.push(replace(twice, attempts=1))  # same pair, same moment, another state
    assert [j.order_id for j in drain(queue, 5.0)] == ["first"] * 3 + ["second", "third"]


def test_entries_carry_the_job_so_stale_ones_are_skipped() -> None:
    """Rescheduling puts a new Job in the table and pushes it; the old entry stays in the heap
    and is recognised as stale because its job is no longer the table's (no search, no
    removal), as the lanes do."""
    table = JobTable()
    table.add_partition(4)
    queue = DueQueue()
    first = queued("A", 10.0, partition=4)
    table.put(first)
    queue.push(first)
    later = replace(first, due_at=50.0)  # rescheduled later
    table.put(later)
    queue.push(later)
    queue.push(queued("B", 20.0, partition=4))  # never in the table (finished or forgotten)

    def live(now: float) -> list[str]:
        return [j.order_id for j in drain(queue, now) if table.get(j.partition, j.key) is j]

    assert live(30.0) == []        # A@10 is stale, B has no job
    assert live(60.0) == ["A"]     # the current entry
    assert len(queue) == 0


def test_a_partition_dropped_from_the_queue_leaves_the_others() -> None:
    queue = DueQueue()
    for partition in (0, 1, 2):
        queue.push(queued(f"o{partition}", 1.0 + partition, partition=partition))
    queue.drop_partition(1)
    assert [j.partition for j in drain(queue, 10.0)] == [0, 2]


def test_a_record_from_before_intents_were_recorded_asks_the_vendor_first() -> None:
    """Without an `intent_at` member nobody can say whether a create happened: the restored
    job carries an intent (its creation time), so its submit looks the order up first."""
    raw = (FIXTURES / "tracking-record-v1-active.json").read_bytes()
    assert b"intent_at" not in raw
    restored = read_tracking_record(b"smake/SHOP-100234", raw, partition=3)
    assert restored.intent_at == restored.created_at


def test_a_new_job_has_no_intent_and_keeps_one_once_recorded() -> None:
    fresh = job()
    assert fresh.intent_at is None
    assert read_tracking_record(tracking_key(fresh.key), encode_job(fresh), 0).intent_at is None
    fresh = replace(fresh, intent_at=1_700_000_123.5)
    assert read_tracking_record(tracking_key(fresh.key), encode_job(fresh), 0).intent_at == 1_700_000_123.5


def test_a_waiting_pair_round_trips_and_other_records_stay_as_they_were() -> None:
    waiting = job(vendor=Vendor.REEVOO, phase=Phase.WAIT, waits_for=Vendor.SMAKE)
    assert decode_job(encode_job(waiting), partition=3) == waiting
    released = replace(waiting, phase=Phase.SUBMIT, waits_for=None, fulfilled_at=1_700_000_100.5)
    assert decode_job(encode_job(released), partition=3) == released
    plain = json.loads(encode_job(job()))
    assert "waits_for" not in plain and "fulfilled_at" not in plain


@pytest.mark.parametrize(("fields", "why"), [
    ({"phase": "wait"}, "names the pair it waits for"),
    ({"waits_for": "smake"}, "names the pair it waits for"),
    ({"phase": "wait", "waits_for": "acme"}, "unknown vendor waited for"),
    ({"fulfilled_at": "yesterday"}, "fulfilled_at is not a time"),
])
def test_a_record_whose_waiting_fields_do_not_fit_is_refused(fields: dict[str, object], why: str) -> None:
    record = {**json.loads(encode_job(job())), **fields}
    with pytest.raises(ValueError, match=why):
        decode_job(json.dumps(record).encode(), partition=0)


def test_a_pairs_cancellation_survives_its_record_and_says_whether_a_refusal_is_owed() -> None:
    owing = replace(job(), phase=Phase.POLL, status=VendorStatus.IN_PROGRESS,
                    vendor_order_ref="7", cancel_id="c-1", cancel_reason="changed mind",
                    cancelling=True)
    assert decode_job(encode_job(owing), owing.partition) == owing
    done = finished("SHOP-9", vendor=Vendor.SMAKE)
    completed = replace(done, status=VendorStatus.COMPLETED)
    replay = replayed(record(completed), record(replace(done, order_id="SHOP-8",
                                                        status=VendorStatus.FAILED)),
                      record(replace(completed, order_id="SHOP-7", cancel_id="c-2")))
    # A completed pair owes a cancellation a refusal; one that failed, or whose
    # cancellation was answered, owes nothing.
    assert replay.quiet == {b"smake/SHOP-8", b"smake/SHOP-7"}
    table = JobTable()
    table.add_partition(3, replay.finished, {}, replay.quiet)
    assert table.owes_refusal(3, ("SHOP-9", Vendor.SMAKE))
    assert not table.owes_refusal(3, ("SHOP-8", Vendor.SMAKE))
    table.note_refused(3, ("SHOP-9", Vendor.SMAKE))
    assert not table.owes_refusal(3, ("SHOP-9", Vendor.SMAKE))


@pytest.mark.parametrize("cancel", [[], "c-1", {"id": ""}, {"id": "c", "owed": "yes"},
                                    {"id": "c", "reason": 5}])
def test_a_records_cancellation_that_is_not_ours_is_refused_by_name(cancel: object) -> None:
    data = json.loads(encode_job(job()))
    data["cancel"] = cancel
    with pytest.raises(ValueError, match="cancel"):
        record_head(data)
