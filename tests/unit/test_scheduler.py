"""The engine with small fakes in place of Kafka and a vendor: no I/O."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka.errors import KafkaTimeoutError
from testkit import (
    EXAMPLE_ORDER_CREATED,
    Engine,
    FakePublisher,
    FakeStore,
    QuietVendor,
    an_order,
    started_engine,
    zakeke_only,
)

from orderflow.adapters.errors import VendorThrottled, VendorUnavailable
from orderflow.adapters.outcomes import LinePrintFiles, Observation, PairState, PrintFileRef, VendorAdapter
from orderflow.consumer.jobs import Job, JobKey, JobTable, Phase
from orderflow.consumer.metrics import Metrics
from orderflow.consumer.ports import HintResult
from orderflow.contracts.events import Order, OrderCreated, Vendor, VendorStatus

EXAMPLE = EXAMPLE_ORDER_CREATED


FakeTracking = FakeStore


class ReadyOnThirdPoll(QuietVendor):
    def __init__(self) -> None:
        self.polls = 0

    async def submit(self, order: Order, state: PairState) -> Observation:
        return Observation(VendorStatus.SUBMITTED, vendor_order_ref="1")

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        self.polls += 1
        status = VendorStatus.COMPLETED if self.polls >= 3 else VendorStatus.SUBMITTED
        return Observation(status, vendor_order_ref="1", vendor_state="INPROCESS")


class LeapingClock:
    """Every reading is a minute later: whatever was scheduled is already due when the
    dispatcher looks, even before the run that scheduled it has ended."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 60.0
        return self.now


async def started_scheduler(
    adapter: VendorAdapter, *, zakeke: dict[str, object] | None = None, poll: dict[str, object] | None = None,
    publisher: FakePublisher | None = None, tracking: FakeStore | None = None,
    metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
) -> tuple[Engine, JobTable]:
    """A running engine with Zakeke only (`adapter`), owning partition 0 of a fresh table."""
    engine = await started_engine({Vendor.ZAKEKE: adapter}, zakeke_only(zakeke, poll),
                                  publisher=publisher, store=tracking, metrics=metrics, clock=clock)
    return engine, engine.table


async def until_finished(table: JobTable, key: JobKey, tries: int) -> None:
    for _ in range(tries):
        if table.get(0, key) is None:
            return
        await asyncio.sleep(0.01)


async def test_a_job_due_again_before_its_last_run_ends_is_deferred_not_dropped():
    order = OrderCreated.model_validate_json(EXAMPLE.read_bytes()).order
    clock = LeapingClock()
    publisher, adapter = FakePublisher(), ReadyOnThirdPoll()
    engine, table = await started_scheduler(adapter, poll={"deadline_s": 10**9},
                                               publisher=publisher, clock=clock)
    job = Job(order_id=order.order_id, vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
              order=order, created_at=clock(), due_at=clock())
    engine.add(job)
    try:
        await until_finished(table, job.key, tries=200)
    finally:
        await engine.stop(grace_s=1)
    statuses = [event.status for event in publisher.events]
    assert statuses == [VendorStatus.SUBMITTED, VendorStatus.COMPLETED]
    assert adapter.polls == 3
    assert table.knows(0, job.key) and table.get(0, job.key) is None  # finished


class FailingOnceTracking(FakeTracking):
    """The first tracking write fails, as during a broker stall."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def write(self, job: Job) -> int:
        if not self.failures:
            self.failures += 1
            raise KafkaTimeoutError()
        return await super().write(job)


class CountingSubmits(ReadyOnThirdPoll):
    def __init__(self) -> None:
        super().__init__()
        self.submits = 0

    def polling_view(self, order: Order) -> Order | None:
        return order

    async def submit(self, order: Order, state: PairState) -> Observation:
        self.submits += 1
        return await super().submit(order, state)


async def test_a_failed_tracking_write_is_retried_without_asking_the_vendor_again():
    order = OrderCreated.model_validate_json(EXAMPLE.read_bytes()).order
    publisher, tracking, adapter = FakePublisher(), FailingOnceTracking(), CountingSubmits()
    engine, table = await started_scheduler(
        adapter, poll={"initial_interval_s": 0.01, "max_interval_s": 0.01},
        publisher=publisher, tracking=tracking)
    job = Job(order_id=order.order_id, vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
              order=order, created_at=time.time(), due_at=0.0)
    engine.add(job)
    try:
        await until_finished(table, job.key, tries=500)
    finally:
        await engine.stop(grace_s=1)
    assert adapter.submits == 1, "the vendor was asked to create the order again"
    assert tracking.failures == 1
    assert [e.status for e in publisher.events] == [VendorStatus.SUBMITTED, VendorStatus.COMPLETED]


class DownThenUp(QuietVendor):
    """Every call fails (503, or 429 with Retry-After) until `up_at`; then orders complete."""

    def __init__(self, up_at: float, throttle: bool) -> None:
        self.up_at = up_at
        self.throttle = throttle
        self.calls: list[float] = []

    async def submit(self, order: Order, state: PairState) -> Observation:
        self.calls.append(time.monotonic())
        await asyncio.sleep(0.01)
        if time.monotonic() < self.up_at:
            if self.throttle:
                raise VendorThrottled(Vendor.ZAKEKE, "register", "Too Many Requests", 429, retry_after=0.5)
            raise VendorUnavailable(Vendor.ZAKEKE, "register", "Service Unavailable", 503)
        return Observation(VendorStatus.COMPLETED, vendor_order_ref="1")

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        return Observation(VendorStatus.COMPLETED, vendor_order_ref="1")


async def run_jobs_against(adapter: DownThenUp, jobs: int) -> JobTable:
    order = OrderCreated.model_validate_json(EXAMPLE.read_bytes()).order
    engine, table = await started_scheduler(
        adapter, zakeke={"max_concurrency": 8},
        poll={"initial_interval_s": 0.01, "max_interval_s": 0.05})
    now = time.time()
    for n in range(jobs):
        engine.add(Job(order_id=f"O-{n}", vendor=Vendor.ZAKEKE, partition=0,
                               source_event_id="e", order=order, created_at=now, due_at=0.0))
    try:
        for _ in range(1000):
            if not table.active_jobs(0):
                break
            await asyncio.sleep(0.01)
    finally:
        await engine.stop(grace_s=1)
    return table


async def test_a_vendor_that_is_down_is_probed_not_hammered_and_its_jobs_finish_after():
    adapter = DownThenUp(up_at=time.monotonic() + 1.0, throttle=False)
    table = await run_jobs_against(adapter, jobs=100)
    assert not table.active_jobs(0), "every job finishes once the vendor is back"
    failed = [t for t in adapter.calls if t < adapter.up_at]
    # Without holding the vendor back, 100 due jobs retrying every 10-50 ms would call
    # hundreds of times in a second; tripped after 5 failures, it is probed now and then.
    assert len(failed) < 30, len(failed)


async def test_retry_after_holds_every_job_of_the_vendor_back():
    adapter = DownThenUp(up_at=time.monotonic() + 0.2, throttle=True)
    table = await run_jobs_against(adapter, jobs=100)
    assert not table.active_jobs(0)
    first_429 = adapter.calls[0]
    early = [t for t in adapter.calls if first_429 + 0.05 < t < first_429 + 0.45]
    assert early == [], "calls started while the vendor's Retry-After was running"


class RecordingOrders(ReadyOnThirdPoll):
    """Completes on the first poll with one line's print files; keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[Order | None] = []

    async def submit(self, order: Order, state: PairState) -> Observation:
        self.given.append(order)
        return await super().submit(order, state)

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        self.given.append(order)
        files = LinePrintFiles(line_id="L1", design_id="d", modification_id=None,
                               zip_url="https://files.example/z.zip",
                               files=(PrintFileRef(format="pdf", url="https://files.example/1.pdf"),))
        return Observation(VendorStatus.COMPLETED, vendor_order_ref="1", vendor_state="COMPLETED",
                           print_files=(files,))


async def run_one(job: Job, adapter: ReadyOnThirdPoll) -> tuple[JobTable, FakePublisher, Metrics]:
    publisher, metrics = FakePublisher(), Metrics(process_collectors=False)
    engine, table = await started_scheduler(
        adapter, poll={"initial_interval_s": 0.01, "max_interval_s": 0.01, "deadline_s": 10**9},
        publisher=publisher, metrics=metrics)
    engine.add(job)
    try:
        await until_finished(table, job.key, tries=500)
    finally:
        await engine.stop(grace_s=1)
    return table, publisher, metrics


async def test_each_run_gets_the_order_built_afresh_from_the_jobs_json():
    order = OrderCreated.model_validate_json(EXAMPLE.read_bytes()).order
    job = Job(order_id=order.order_id, vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
              order=order, created_at=time.time(), due_at=0.0)
    adapter = RecordingOrders()
    table, publisher, metrics = await run_one(job, adapter)
    assert adapter.given == [order, order]
    assert adapter.given[0] is not order and adapter.given[0] is not adapter.given[1]
    assert [getattr(e, "status", "print_files") for e in publisher.events] == [
        VendorStatus.SUBMITTED, "print_files", VendorStatus.COMPLETED]
    # The time from the order's placed_at to its print files is measured from the run's order.
    assert metrics.registry.get_sample_value("orderflow_order_to_print_files_seconds_count") == 1
    assert table.get(0, job.key) is None and table.knows(0, job.key)


async def test_a_job_whose_order_cannot_be_read_ends_without_calling_the_vendor():
    job = Job(order_id="SHOP-1", vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
              order_json=b'{"order_id":"SHOP-1"}', created_at=time.time(), due_at=0.0)
    adapter = RecordingOrders()
    table, publisher, _ = await run_one(job, adapter)
    assert adapter.given == []
    [event] = publisher.events
    assert event.status is VendorStatus.TIMED_OUT and event.reason == "the job's order could not be read"
    assert table.get(0, job.key) is None and table.knows(0, job.key)


async def test_a_job_waiting_for_the_rate_limit_does_not_start_after_its_partition_is_handed_back():
    order = OrderCreated.model_validate_json(EXAMPLE.read_bytes()).order
    adapter = CountingSubmits()
    engine, _ = await started_scheduler(adapter, zakeke={"rate_limit_per_s": 2})
    now = time.time()
    for n in range(5):
        engine.add(Job(order_id=f"O-{n}", vendor=Vendor.ZAKEKE, partition=0,
                               source_event_id="e", order=order, created_at=now, due_at=0.0))
    try:
        await asyncio.sleep(0.7)  # two calls pass the limit of 2/s (its burst); a third waits
        started = adapter.submits
        await engine.owner.close([0], timeout_s=1)
        await asyncio.sleep(1.0)
    finally:
        await engine.stop(grace_s=1)
    assert adapter.submits == started, "a call started after its partition was handed back"


async def run_example_job(engine: Engine, table: JobTable, tries: int) -> Job:
    """Schedule a Zakeke job of the example order, wait until it finished (or `tries` ticks
    passed), then stop the engine."""
    order = OrderCreated.model_validate_json(EXAMPLE.read_bytes()).order
    job = Job(order_id=order.order_id, vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
              order=order, created_at=time.time(), due_at=time.time())
    engine.add(job)
    try:
        await until_finished(table, job.key, tries=tries)
    finally:
        await engine.stop(grace_s=1)
    return job


class FailingOncePublisher(FakePublisher):
    """The first publish fails with an error that is not Kafka's: a bug, say."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def publish(self, events) -> None:
        if not self.failures:
            self.failures += 1
            raise RuntimeError("a bug in publishing")
        await super().publish(events)


class SaysFailedWithHostileTexts(ReadyOnThirdPoll):
    def polling_view(self, order: Order) -> Order | None:
        return order

    async def submit(self, order: Order, state: PairState) -> Observation:
        return Observation(VendorStatus.FAILED, vendor_order_ref="1" * 5_000,
                           vendor_state="\ud800failed", reason="\udfff" + "r" * 1_000_000,
                           tracking_numbers=tuple(f"T{i}\ud800" for i in range(500)))


async def test_a_job_run_ended_by_an_unexpected_error_runs_again_later():
    publisher, adapter = FailingOncePublisher(), ReadyOnThirdPoll()
    metrics = Metrics(process_collectors=False)
    engine, table = await started_scheduler(
        adapter, poll={"initial_interval_s": 0.01, "max_interval_s": 0.05, "deadline_s": 10**9},
        publisher=publisher, metrics=metrics)
    await run_example_job(engine, table, tries=500)
    assert publisher.failures == 1
    assert [e.status for e in publisher.events][-1] is VendorStatus.COMPLETED
    assert metrics.job_errors.labels("zakeke")._value.get() == 1
    assert engine.scheduler.is_alive() is False  # stopped by us, not by the error


async def test_a_vendors_hostile_texts_still_publish_bounded_and_valid():
    publisher = FakePublisher()
    engine, table = await started_scheduler(SaysFailedWithHostileTexts(), publisher=publisher)
    await run_example_job(engine, table, tries=200)
    failed = publisher.events[-1]
    assert failed.status is VendorStatus.FAILED
    encoded = failed.model_dump_json().encode("utf-8")
    assert len(encoded) < 64_000
    assert failed.reason is not None and len(failed.reason) == 1_000 and "\udfff" not in failed.reason
    assert len(failed.tracking_numbers) == 50


class LosesItsFirstCreateAnswer(ReadyOnThirdPoll):
    """Records the intent, 'creates', and the first answer is lost; it remembers the states
    each submit was given."""

    def __init__(self, nothing_created: bool = False) -> None:
        super().__init__()
        self.seen: list[PairState] = []
        self.nothing_created = nothing_created

    def polling_view(self, order: Order) -> Order | None:
        return order

    async def submit(self, order: Order, state: PairState) -> Observation:
        self.seen.append(state)
        await state.intend_to_create()
        if len(self.seen) == 1:
            error = VendorUnavailable(Vendor.ZAKEKE, "register_order", "answer lost")
            error.nothing_created = self.nothing_created
            raise error
        return Observation(VendorStatus.COMPLETED, vendor_order_ref="1")


async def test_the_intent_is_recorded_before_the_create_and_the_retry_carries_it():
    tracking, adapter = FakeTracking(), LosesItsFirstCreateAnswer()
    engine, table = await started_scheduler(
        adapter, poll={"initial_interval_s": 0.01, "max_interval_s": 0.02, "deadline_s": 10**9},
        tracking=tracking)
    await run_example_job(engine, table, tries=300)
    first, second = adapter.seen
    assert first.intent_at is None  # a new pair: nothing to ask before creating
    assert second.intent_at is not None  # after a lost answer: ask first
    # The intent reached the tracking topic before the create was sent.
    assert tracking.records[0].intent_at is not None and tracking.records[0].phase is Phase.SUBMIT


async def test_a_create_that_never_acted_leaves_no_intent_in_hand():
    adapter = LosesItsFirstCreateAnswer(nothing_created=True)
    engine, table = await started_scheduler(
        adapter, poll={"initial_interval_s": 0.01, "max_interval_s": 0.02, "deadline_s": 10**9})
    await run_example_job(engine, table, tries=300)
    assert [state.intent_at for state in adapter.seen] == [None, None]


class GatedPolls(ReadyOnThirdPoll):
    """Each poll waits for the test to let it answer; the vendor's state moves only after
    the first poll has read it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def poll(self, order: Order | None, state: PairState) -> Observation:
        self.polls += 1
        if self.polls == 1:
            self.entered.set()
            await self.go.wait()
            return Observation(VendorStatus.SUBMITTED, vendor_order_ref="1", vendor_state="INPROCESS")
        return Observation(VendorStatus.COMPLETED, vendor_order_ref="1", vendor_state="READY")


async def test_a_webhook_during_a_running_poll_polls_again_when_it_ends():
    """The answer in hand may predate the change the webhook announces: the pair must not
    wait a whole (slow) poll interval for it."""
    order = OrderCreated.model_validate_json(EXAMPLE.read_bytes()).order
    publisher, adapter = FakePublisher(), GatedPolls()
    engine, table = await started_scheduler(
        adapter, poll={"initial_interval_s": 600, "max_interval_s": 600},
        publisher=publisher)
    job = Job(order_id=order.order_id, vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
              order=order, phase=Phase.POLL, status=VendorStatus.SUBMITTED,
              vendor_order_ref="1", created_at=time.time(), due_at=time.time())
    engine.add(job)
    try:
        await asyncio.wait_for(adapter.entered.wait(), 5)
        assert engine.scheduler.look_now(Vendor.ZAKEKE, None, "1") is HintResult.POLLED_NOW
        adapter.go.set()
        await until_finished(table, job.key, tries=300)
    finally:
        await engine.stop(grace_s=1)
    assert adapter.polls == 2, "polled again at once, not 600 s later"
    assert [event.status for event in publisher.events] == [VendorStatus.COMPLETED]


async def test_a_vendors_own_deadline_ends_its_pairs_not_the_polling_deadline():
    """`ORDERFLOW_ZAKEKE__DEADLINE_S` shorter than `ORDERFLOW_POLL__DEADLINE_S`: a pair older
    than the vendor's deadline ends `timed_out` without a call."""
    publisher, adapter = FakePublisher(), RecordingOrders()
    engine, table = await started_scheduler(adapter, zakeke={"deadline_s": 60},
                                            poll={"deadline_s": 10**9}, publisher=publisher)
    old = Job(order_id="SHOP-OLD", vendor=Vendor.ZAKEKE, partition=0, source_event_id="e",
              order=an_order(), created_at=time.time() - 120, due_at=0.0)
    engine.add(old)
    try:
        await until_finished(table, old.key, tries=200)
    finally:
        await engine.stop(grace_s=1)
    assert adapter.given == []
    assert [event.status for event in publisher.events] == [VendorStatus.TIMED_OUT]
