"""A partition's life, in one owner: assigned (restoring) -> open -> closing -> gone, kept
across a rebalance back to open, restored afresh when someone else wrote its tracking
partition meanwhile. Driven without a broker: the tracking topic and the intake's input
are fakes (tests/testkit.py)."""

from __future__ import annotations

import asyncio

from testkit import FakeInput, FakeTrackingTopic, a_job

from orderflow.consumer.jobs import Job, JobTable, Phase
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.partitions import PartitionOwner


class Listener:
    """The scheduler's side of the owner: what it was told."""

    def __init__(self) -> None:
        self.opened: list[tuple[int, int]] = []
        self.closing: list[set[int]] = []
        self.shares: list[tuple[int, int]] = []

    async def partition_opened(self, partition: int, jobs: list[Job]) -> None:
        self.opened.append((partition, len(jobs)))

    def partitions_closing(self, partitions: set[int]) -> None:
        self.closing.append(set(partitions))

    def share_taken(self, owned: int, total: int) -> None:
        self.shares.append((owned, total))


def owner_of(topic: FakeTrackingTopic) -> tuple[PartitionOwner, Listener, Metrics]:
    metrics = Metrics(process_collectors=False)
    owner = PartitionOwner(JobTable(), topic, metrics)
    listener = Listener()
    owner.listen(listener)
    return owner, listener, metrics


async def restored(owner: PartitionOwner) -> None:
    await asyncio.gather(*owner.restore_tasks())


async def test_an_assignment_is_restored_with_its_input_paused_then_opened() -> None:
    waiting = a_job(partition=1, phase=Phase.POLL, vendor_order_ref="Z-1")
    topic = FakeTrackingTopic(ends={1: 7}, held={1: {waiting.key: waiting}}, gate=asyncio.Event())
    owner, listener, metrics = owner_of(topic)
    gate = FakeInput()

    restoring = await owner.assigned({0, 1}, 12, gate)
    assert restoring == [0, 1] and owner.restoring() == [0, 1]
    assert gate.paused == {0, 1}, "no input is read before its jobs are known"
    assert not owner.is_open(1) and listener.shares == [(2, 12)]

    topic.gate.set()  # type: ignore[union-attr]
    await restored(owner)
    assert owner.open_partitions() == [0, 1] and gate.paused == set()
    assert sorted(listener.opened) == [(0, 0), (1, 1)]
    assert owner.table.get(1, waiting.key) is waiting and owner.current(waiting)
    assert owner.order_of(waiting.vendor, "Z-1") == waiting.order_id, "webhooks find it"
    assert metrics.partitions_restored._value.get() == 2


async def test_a_revoked_partition_waits_for_its_calls_and_starts_nothing_more() -> None:
    owner, listener, _ = owner_of(FakeTrackingTopic())
    await owner.assigned({0}, 12, FakeInput())
    await restored(owner)
    call = asyncio.create_task(asyncio.sleep(0.05))
    owner.add_call(0, call)
    assert owner.calls_running() == 1

    await owner.close({0}, timeout_s=5)
    assert call.done() and not call.cancelled(), "the running call was let finish"
    assert not owner.is_open(0) and owner.owned() == {0}, "closing, still owned until reassigned"
    assert listener.closing == [{0}]

    slow = asyncio.create_task(asyncio.sleep(60))
    await owner.assigned({0}, 12, FakeInput())
    owner.add_call(0, slow)
    await owner.close({0}, timeout_s=0.01)
    assert slow.cancelled(), "a call past the grace period is cancelled"


async def test_a_partition_kept_across_a_rebalance_opens_again_without_a_restore() -> None:
    topic = FakeTrackingTopic()
    owner, _, _ = owner_of(topic)
    gate = FakeInput()
    await owner.assigned({0, 1}, 12, gate)
    await restored(owner)
    job = a_job(partition=0)
    owner.table.put(job)
    owner.note_tracking_offset(0, 41)
    topic.ends[0] = 42  # nobody else wrote: the end is what we wrote
    await owner.close({0, 1}, timeout_s=1)

    await owner.assigned({0}, 12, gate)
    assert topic.restores == [[0, 1]], "kept: not read again"
    assert owner.owned() == {0} and owner.is_open(0)
    assert owner.table.get(0, job.key) is job
    assert owner.table.partitions() == [0], "the partition handed on is forgotten"


async def test_a_kept_partition_someone_else_wrote_meanwhile_is_restored_afresh() -> None:
    topic = FakeTrackingTopic()
    owner, _, _ = owner_of(topic)
    await owner.assigned({3}, 12, FakeInput())
    await restored(owner)
    stale = a_job(partition=3)
    owner.table.put(stale)
    await owner.close({3}, timeout_s=1)

    topic.ends[3] = 10  # another owner wrote after a session timeout
    fresher = a_job(partition=3, phase=Phase.POLL, vendor_order_ref="R")
    topic.held[3] = {fresher.key: fresher}
    await owner.assigned({3}, 12, FakeInput())
    await restored(owner)
    assert topic.restores == [[3], [3]]
    assert owner.table.get(3, fresher.key) is fresher, "the table was rebuilt from the topic"


async def test_forgetting_a_partition_removes_everything_kept_of_it() -> None:
    owner, listener, _ = owner_of(FakeTrackingTopic())
    gate = FakeInput()
    await owner.assigned({5}, 12, gate)
    await restored(owner)
    owner.note_committed(5, 100)
    owner.dead_lettered(5).add(99)
    job = a_job(partition=5, phase=Phase.POLL, vendor_order_ref="REF")
    owner.table.put(job)
    owner.index(job)

    await owner.assigned({6}, 12, gate)
    await restored(owner)
    assert owner.owned() == {6}
    assert owner.committed(5) is None and owner.dead_lettered(5) == set()
    assert owner.table.get(5, job.key) is None and owner.order_of(job.vendor, "REF") is None
    assert {5} in listener.closing, "its queued jobs are dropped"


async def test_a_shared_restore_is_cancelled_only_with_its_last_partition() -> None:
    topic = FakeTrackingTopic(gate=asyncio.Event())
    owner, _, _ = owner_of(topic)
    await owner.assigned({2, 3}, 12, FakeInput())
    [restore] = owner.restore_tasks()
    owner.forget(2)
    await asyncio.sleep(0)
    assert not restore.cancelled()
    owner.forget(3)
    await asyncio.sleep(0)
    assert restore.cancelled() and owner.restore_tasks() == []


async def test_a_committed_offset_from_the_group_keeps_the_dead_letters_noted() -> None:
    """Only this intake's commit means the noted dead letters are never read again."""
    owner, _, _ = owner_of(FakeTrackingTopic())
    await owner.assigned({0}, 12, FakeInput())
    await restored(owner)
    owner.dead_lettered(0).add(7)
    owner.note_committed(0, 5, by_us=False)
    assert owner.dead_lettered(0) == {7} and owner.committed(0) == 5
    owner.note_committed(0, 8)
    assert owner.dead_lettered(0) == set()


async def test_a_process_that_stood_still_a_whole_session_creates_nothing_until_assigned_again() -> None:
    """A replica frozen (or starved) as long as its group session was counted out: another
    replica may own its partitions and be creating the same vendor orders. Until the group
    assigns again, `ownership_in_doubt` holds its creates back."""
    now = [1_000.0]
    owner = PartitionOwner(JobTable(), FakeTrackingTopic(), Metrics(process_collectors=False),
                           session_timeout_s=10.0, monotonic=lambda: now[0])
    owner.tick()
    now[0] += 9.0
    assert not owner.ownership_in_doubt(), "shorter than a session: still a member"
    owner.tick()
    now[0] += 10.5  # frozen past the session, and nothing has run since
    assert owner.ownership_in_doubt()
    owner.tick()
    now[0] += 1.0
    assert owner.ownership_in_doubt(), "running again does not make it the owner again"
    await owner.assigned({0}, 12, FakeInput())
    assert not owner.ownership_in_doubt(), "the group has assigned: what is assigned is ours"
    owner.tick()
    now[0] += 10.0
    assert owner.ownership_in_doubt()
    now[0] += 30.0
    assert not owner.ownership_in_doubt(), "no rebalance in three sessions: it was still a member"
