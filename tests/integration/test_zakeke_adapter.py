"""ZakekeAdapter against the Zakeke simulator over real loopback HTTP.

The simulator is an independent reading of the Zakeke pages, so these tests check the
adapter against the documents: registration with a customer/visitor-coded token, lookup
before registering, print files after INPROCESS, token expiry and refusal, and every kind of
failure mapped to the error taxonomy. Adapter and simulator share one `ManualClock`, so
token expiry and print-file rendering happen when a test says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from conftest import EnginePair
from pydantic import SecretStr
from testkit import FIXTURES, RecordingObserver, an_order

from orderflow.adapters.errors import (
    NotProvenAbsent,
    VendorAuthFailed,
    VendorRejected,
    VendorThrottled,
    VendorUnavailable,
)
from orderflow.adapters.outcomes import Observation, PairState, PrintFileRef, VendorAdapter
from orderflow.adapters.zakeke import ZakekeAdapter
from orderflow.config.settings import ZakekeSettings
from orderflow.contracts.events import Order, OrderCreated, VendorStatus
from orderflow.sandbox.simulators.base import ManualClock, SimulatorServer
from orderflow.sandbox.simulators.zakeke import ZakekeOrderLine, ZakekeSimulator

pytestmark = pytest.mark.integration

CLIENT_ID, CLIENT_SECRET = "orderflow-test", "s3cret-never-shown"
DESIGN_ID = "000-pLheeWxP125a8axD07QthB"


def with_l1(order: Order, **customization: Any) -> Order:
    data = order.model_dump(mode="json")
    data["lines"][0]["customization"].update(customization)
    return Order.model_validate(data)


class Sandbox:
    """A simulator served on loopback, and adapters pointed at it, on one manual clock."""

    def __init__(self, simulator: ZakekeSimulator, clock: ManualClock) -> None:
        self.sim = simulator
        self.clock = clock
        self.server = SimulatorServer(simulator)
        self.observer = RecordingObserver()
        self._adapters: list[ZakekeAdapter] = []

    def settings(self, **changes: Any) -> ZakekeSettings:
        values: dict[str, Any] = {
            "base_url": self.server.base_url,
            "client_id": CLIENT_ID,
            "client_secret": SecretStr(CLIENT_SECRET),
            "request_timeout_s": 2.0,
        }
        values.update(changes)
        return ZakekeSettings(**values)

    async def adapter(self, **settings: Any) -> ZakekeAdapter:
        adapter = ZakekeAdapter(self.settings(**settings), self.observer, clock=self.clock,
                                wall_clock=self.clock)
        await adapter.start()
        self._adapters.append(adapter)
        return adapter

    async def close(self) -> None:
        for adapter in self._adapters:
            await adapter.stop()
        await self.server.stop()


SandboxFactory = Callable[..., Any]


@pytest.fixture
async def sandbox_factory() -> AsyncIterator[Callable[..., Any]]:
    made: list[Sandbox] = []

    async def make(simulator_class: type[ZakekeSimulator] = ZakekeSimulator,
                   **sim_options: Any) -> Sandbox:
        clock = ManualClock(1000.0)
        options: dict[str, Any] = {
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "print_files_delay_s": 30.0, "clock": clock, "seed": 7,
        }
        options.update(sim_options)
        sandbox = Sandbox(simulator_class(**options), clock)
        await sandbox.server.start()
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        await sandbox.close()


@pytest.fixture
async def sandbox(sandbox_factory: Callable[..., Any]) -> Sandbox:
    made: Sandbox = await sandbox_factory()
    return made


# ----------------------------------------------------------------------------- happy path


async def test_register_then_poll_until_print_files(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    order = an_order()

    submitted = await adapter.submit(order, PairState())
    assert submitted.status is VendorStatus.SUBMITTED
    registered = sandbox.sim.orders_with_code("SHOP-100234")
    assert len(registered) == 1
    assert submitted.vendor_order_ref == str(registered[0].id)
    assert submitted.vendor_state == "INPROCESS"
    # L1 as a design detail, L2 as a composition detail, L3 (not Zakeke's) not at all.
    sent = [(line.detail_code, line.design_id, line.composition) for line in registered[0].lines]
    assert sent == [("L1", DESIGN_ID, None), ("L2", None, "315-abc123")]
    assert registered[0].total == 57.20
    assert registered[0].session_id == "sess-8f2c41"
    # The line's 12.00 includes its 4.00 design: model 8.00 + design 4.00, as the customer paid.
    assert registered[0].lines[0].unit_price == 12.00

    state = PairState(submitted.vendor_order_ref, submitted.vendor_state)
    waiting = await adapter.poll(order, state)
    assert waiting == Observation(VendorStatus.SUBMITTED, submitted.vendor_order_ref, "INPROCESS")

    sandbox.clock.advance(31)
    done = await adapter.poll(order, state)
    assert done.status is VendorStatus.COMPLETED
    assert (done.vendor_order_ref, done.vendor_state) == (submitted.vendor_order_ref, "READY")
    assert len(done.print_files) == 1  # the design line only, not the composition line
    files = done.print_files[0]
    assert (files.line_id, files.design_id, files.modification_id) == ("L1", DESIGN_ID, None)
    assert files.zip_url is not None and files.zip_url.endswith(f"/print/{DESIGN_ID}.zip")
    assert [f.format for f in files.files] == ["PDF", "PNG"]
    assert all(isinstance(f, PrintFileRef) and f.url.startswith("http") for f in files.files)

    assert sandbox.sim.ledger.duplicates() == {}
    # One plain token for reads, one customer-coded token for the registration.
    assert sandbox.sim.ledger.request_count("token") == 2
    assert set(sandbox.observer.operations()) == {"token", "get_order", "register_order"}
    assert all(vendor == "zakeke" for vendor, _, _ in sandbox.observer.calls)


async def test_registration_token_carries_the_customer_code(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    await adapter.submit(an_order(), PairState())
    registered = sandbox.sim.orders_with_code("SHOP-100234")[0]
    assert (registered.customer_code, registered.visitor_code) == ("C-1122", None)


async def test_guest_registration_token_carries_the_visitor_code(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    guest = an_order(customer={"email": "g@example.com"})
    await adapter.submit(guest, PairState())
    registered = sandbox.sim.orders_with_code("SHOP-100234")[0]
    assert (registered.customer_code, registered.visitor_code) == (None, "sess-8f2c41")

    no_session = an_order(order_id="SHOP-9", session_id=None, customer={"email": "g@x.org"})
    await adapter.submit(no_session, PairState())
    registered = sandbox.sim.orders_with_code("SHOP-9")[0]
    assert (registered.visitor_code, registered.session_id) == ("SHOP-9", "SHOP-9")


async def test_registration_tokens_are_reused_per_code(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    for number in range(3):
        await adapter.submit(an_order(order_id=f"SHOP-{number}"), PairState())
    # One read token plus one token for customer C-1122, shared by all three orders.
    assert sandbox.sim.ledger.request_count("token") == 2
    assert sandbox.sim.ledger.total_created == 3


async def test_missing_design_price_is_asked_of_zakeke(sandbox_factory: SandboxFactory) -> None:
    sandbox: Sandbox = await sandbox_factory(design_unit_price=2.5)
    adapter = await sandbox.adapter()
    order = with_l1(an_order(), design_unit_price=None, modification_id="mod-1")
    await adapter.submit(order, PairState())
    line = sandbox.sim.orders_with_code("SHOP-100234")[0].lines[0]
    assert (line.unit_price, line.modification_id) == (12.0, "mod-1")  # model 9.50 + design 2.50
    assert sandbox.sim.ledger.request_count("get_design_qty") == 1
    assert "get_design" in sandbox.observer.operations()

    sandbox.clock.advance(31)
    done = await adapter.poll(order, PairState())
    assert done.status is VendorStatus.COMPLETED
    assert done.print_files[0].modification_id == "mod-1"
    assert done.print_files[0].zip_url is not None
    assert done.print_files[0].zip_url.endswith(f"/print/{DESIGN_ID}-mod-1.zip")


async def test_many_pollers_share_one_token_request(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    order = an_order()
    await adapter.submit(order, PairState())
    sandbox.sim.ledger.reset()
    sandbox.clock.advance(3600)  # every token has expired
    observations = await asyncio.gather(*(adapter.poll(order, PairState()) for _ in range(25)))
    assert {o.status for o in observations} == {VendorStatus.COMPLETED}
    assert sandbox.sim.ledger.request_count("token") == 1


# ----------------------------------------------------------------------------- effectively once


async def test_submit_adopts_an_order_zakeke_already_has(sandbox: Sandbox) -> None:
    order, pair = an_order(), EnginePair(sandbox.clock)
    first = await (await sandbox.adapter()).submit(order, pair.state())
    # A restarted service (a fresh adapter, the intent restored) submits the same order again.
    again = await (await sandbox.adapter()).submit(order, pair.state())
    assert again.status is VendorStatus.SUBMITTED
    assert again.vendor_order_ref == first.vendor_order_ref
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1
    assert sandbox.sim.ledger.request_count("create_order") == 1


async def test_a_first_submit_registers_without_reading_first(sandbox: Sandbox) -> None:
    order, pair = an_order(), EnginePair(sandbox.clock)
    await (await sandbox.adapter()).submit(order, pair.state())
    # Register (with its token), read back (with the read token): no lookup before, since
    # without an intent nobody can have registered it.
    assert sandbox.observer.operations() == ["token", "register_order", "token", "get_order"]
    assert pair.intents == 1


async def test_adopting_an_order_whose_files_are_ready_completes_it(sandbox: Sandbox) -> None:
    order, pair = an_order(), EnginePair(sandbox.clock)
    await (await sandbox.adapter()).submit(order, pair.state())
    sandbox.clock.advance(31)
    adopted = await (await sandbox.adapter()).submit(order, pair.state())
    assert adopted.status is VendorStatus.COMPLETED
    assert [files.line_id for files in adopted.print_files] == ["L1"]
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1


async def test_lookup_finds_an_order_code_with_reserved_characters(sandbox: Sandbox) -> None:
    order, pair = an_order(order_id="A/B 1?x=%2F#"), EnginePair(sandbox.clock)
    first = await (await sandbox.adapter()).submit(order, pair.state())
    again = await (await sandbox.adapter()).submit(order, pair.state())
    assert first.vendor_order_ref == again.vendor_order_ref == "1"
    assert sandbox.sim.ledger.created == {"A/B 1?x=%2F#": 1}


async def test_a_lost_answer_to_the_registration_is_recovered_without_a_second_one(
    sandbox: Sandbox,
) -> None:
    adapter = await sandbox.adapter()
    order, pair = an_order(), EnginePair(sandbox.clock)
    # Zakeke registers the order, but the answer is lost (a 5xx after the effect).
    sandbox.sim.knobs.fail_after_effect_rate = 1.0
    sandbox.sim.knobs.fail_after_effect_mode = "error"
    with pytest.raises(VendorUnavailable):
        await adapter.submit(order, pair.state())
    sandbox.sim.knobs.fail_after_effect_rate = 0.0
    retried = await adapter.submit(order, pair.state())
    assert retried.status is VendorStatus.SUBMITTED and retried.vendor_order_ref == "1"
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1


async def test_a_dropped_connection_after_registration_is_recovered(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    order, pair = an_order(), EnginePair(sandbox.clock)
    sandbox.sim.knobs.fail_after_effect_rate = 1.0
    sandbox.sim.knobs.fail_after_effect_mode = "drop"
    with pytest.raises(VendorUnavailable):
        await adapter.submit(order, pair.state())
    sandbox.sim.knobs.fail_after_effect_rate = 0.0
    await adapter.submit(order, pair.state())
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1


class LaggingZakeke(ZakekeSimulator):
    """Zakeke whose order reads lag behind registration: a just-registered code still
    answers 404 for `lag_reads` reads."""

    lag_reads = 2

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.lagging: dict[str, int] = {}

    async def _get_order_by_code(self, request: web.Request) -> web.Response:
        code = request.match_info["orderCode"]
        if self.orders_with_code(code) and self.lagging.setdefault(code, self.lag_reads) > 0:
            self.lagging[code] -= 1
            return web.json_response({"message": "not found", "errorCode": None}, status=404)
        return await super()._get_order_by_code(request)


async def test_registration_read_back_may_lag(sandbox_factory: SandboxFactory) -> None:
    sandbox: Sandbox = await sandbox_factory(LaggingZakeke)
    adapter = await sandbox.adapter()
    order = an_order()
    submitted = await adapter.submit(order, EnginePair(sandbox.clock).state())
    assert submitted == Observation(VendorStatus.SUBMITTED)  # registered, id not known yet
    # Still lagging: nothing changed, which the poll says by repeating the pair's state.
    lagging = await adapter.poll(order, PairState(None, None))
    assert lagging == Observation(VendorStatus.SUBMITTED, None, None)
    learned = await adapter.poll(order, PairState(None, None))
    assert learned == Observation(VendorStatus.SUBMITTED, "1", "INPROCESS")
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1


class ReadOutageZakeke(ZakekeSimulator):
    """Registers orders, but order reads fail (503) once the code is registered."""

    async def _get_order_by_code(self, request: web.Request) -> web.Response:
        if self.orders_with_code(request.match_info["orderCode"]):
            return web.json_response({"message": "Service Unavailable"}, status=503)
        return await super()._get_order_by_code(request)


async def test_a_failed_read_back_does_not_fail_the_registration(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: Sandbox = await sandbox_factory(ReadOutageZakeke)
    adapter = await sandbox.adapter()
    order, pair = an_order(), EnginePair(sandbox.clock)
    # Raising here would make the engine submit again; the order is registered.
    assert await adapter.submit(order, pair.state()) == Observation(VendorStatus.SUBMITTED)
    with pytest.raises(VendorUnavailable):
        await adapter.poll(order, PairState())
    with pytest.raises(VendorUnavailable):  # a repeated submit must not post either
        await adapter.submit(order, pair.state())
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1


async def test_a_lost_registration_whose_reads_lag_waits_for_proof_and_never_registers_twice(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: Sandbox = await sandbox_factory(LaggingZakeke)
    LaggingZakeke.lag_reads = 3
    adapter = await sandbox.adapter(register_settle_s=60)
    order, pair = an_order(), EnginePair(sandbox.clock)
    sandbox.sim.knobs.fail_after_effect_rate = 1.0  # registered, answer lost
    with pytest.raises(VendorUnavailable):
        await adapter.submit(order, pair.state())
    sandbox.sim.knobs.fail_after_effect_rate = 0.0
    for _ in range(3):  # 404s from a lagging read prove nothing within the settle window
        sandbox.clock.advance(5)
        with pytest.raises(NotProvenAbsent, match="not proven absent yet"):
            await adapter.submit(order, pair.state())
    sandbox.clock.advance(5)
    adopted = await adapter.submit(order, pair.state())
    assert adopted.vendor_order_ref == "1"
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1


class RefusingFirstRegistration(ZakekeSimulator):
    """Answers the first registration 503 without registering anything."""

    refused = False

    async def _post_order(self, request: web.Request) -> web.Response:
        if not self.refused:
            self.refused = True
            return web.json_response({"message": "Service Unavailable"}, status=503)
        return await super()._post_order(request)


async def test_a_registration_that_never_happened_is_posted_again_after_the_settle_window(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: Sandbox = await sandbox_factory(RefusingFirstRegistration)
    adapter = await sandbox.adapter(register_settle_s=60)
    order, pair = an_order(), EnginePair(sandbox.clock)
    with pytest.raises(VendorUnavailable):
        await adapter.submit(order, pair.state())
    sandbox.clock.advance(30)
    with pytest.raises(NotProvenAbsent):
        await adapter.submit(order, pair.state())
    sandbox.clock.advance(31)
    registered = await adapter.submit(order, pair.state())
    assert registered.vendor_order_ref == "1"
    assert sandbox.sim.ledger.created_count("SHOP-100234") == 1
    assert pair.intents == 2


async def test_poll_of_an_unknown_order_reports_no_change(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    seen = await adapter.poll(an_order(), PairState("17", "INPROCESS"))
    assert seen == Observation(VendorStatus.SUBMITTED, "17", "INPROCESS")


class ZiplessZakeke(ZakekeSimulator):
    """Zakeke whose READY items leave `printingFilesZip` out (the designs API has it)."""

    def _item_json(self, line: ZakekeOrderLine, now: float, request: web.Request) -> dict[str, Any]:
        item = super()._item_json(line, now, request)
        item["printingFilesZip"] = None
        return item


async def test_a_names_and_numbers_line_gets_its_files_per_format_from_the_designs_api(
    sandbox: Sandbox,
) -> None:
    """Designs page: "In the case of a design created with the Names and numbers tool ...
    GET .../outputfiles/{fileFormat}?modificationID={modificationID}" and
    ".../outputfiles/zip/{modificationID}"; the order's items document no modification."""
    adapter = await sandbox.adapter()
    order = with_l1(an_order(), modification_id="mod-1")
    await adapter.submit(order, PairState())
    sandbox.clock.advance(31)
    done = await adapter.poll(order, PairState())
    assert done.status is VendorStatus.COMPLETED
    files = done.print_files[0]
    assert files.modification_id == "mod-1"
    assert files.zip_url is not None and files.zip_url.endswith(f"/print/{DESIGN_ID}-mod-1.zip")
    assert [(f.format, f.url.rsplit("/", 1)[-1]) for f in files.files] == [
        ("PDF", f"{DESIGN_ID}-mod-1.pdf"), ("PNG", f"{DESIGN_ID}-mod-1.png")]
    assert sandbox.sim.ledger.request_count("output_zip_modification") == 1
    assert sandbox.sim.ledger.request_count("output_file") == 2


async def test_files_that_need_a_modification_id_the_line_lacks_end_the_pair_rejected(
    sandbox_factory: SandboxFactory,
) -> None:
    """Designs page, error codes: "Design Files have ModificationID: need to specify
    ModificationID." No later poll can get the files: the pair ends with Zakeke's words
    instead of being asked again until its deadline."""
    sandbox: Sandbox = await sandbox_factory(ZiplessZakeke)  # the zip is asked of the designs API
    adapter = await sandbox.adapter()
    registered = with_l1(an_order(), modification_id="mod-1")
    await adapter.submit(registered, PairState())
    sandbox.clock.advance(31)
    # The same order as it reached us without the line's modification id.
    done = await adapter.poll(an_order(), PairState())
    assert done.status is VendorStatus.REJECTED
    assert done.reason is not None
    assert "need to specify ModificationID" in done.reason
    assert "modification_id" in done.reason


async def test_missing_zip_url_is_asked_of_the_designs_api(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: Sandbox = await sandbox_factory(ZiplessZakeke)
    adapter = await sandbox.adapter()
    order = an_order()
    await adapter.submit(order, PairState())
    sandbox.clock.advance(31)
    done = await adapter.poll(order, PairState())
    assert done.status is VendorStatus.COMPLETED
    assert done.print_files[0].zip_url is not None
    assert done.print_files[0].zip_url.endswith(f"/print/{DESIGN_ID}.zip")
    assert [f.format for f in done.print_files[0].files] == ["PDF", "PNG"]
    assert sandbox.sim.ledger.request_count("output_zip") == 1
    assert "get_print_files" in sandbox.observer.operations()


# ----------------------------------------------------------------------------- tokens


async def test_an_expired_token_is_replaced_before_use(sandbox_factory: SandboxFactory) -> None:
    sandbox: Sandbox = await sandbox_factory(token_expires_in_s=10)
    adapter = await sandbox.adapter()
    order = an_order()
    await adapter.submit(order, PairState())
    tokens_before = sandbox.sim.ledger.request_count("token")
    sandbox.clock.advance(9.5)  # inside the safety margin of a 10 s token
    seen = await adapter.poll(order, PairState())
    assert seen.status is VendorStatus.SUBMITTED
    assert sandbox.sim.ledger.request_count("token") == tokens_before + 1
    assert sandbox.sim.ledger.request_count(status=401) == 0


async def test_a_401_refreshes_the_token_once_and_continues(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: Sandbox = await sandbox_factory(token_expires_in_s=5)
    adapter = await sandbox.adapter()
    order = an_order()
    await adapter.submit(order, PairState())
    # Zakeke's clock runs ahead of ours: it has expired a token we still think is fresh.
    sandbox.sim.clock = lambda: sandbox.clock() + 100
    sandbox.sim.ledger.reset()
    seen = await adapter.poll(order, PairState())
    assert seen.status is VendorStatus.COMPLETED
    assert sandbox.sim.ledger.request_count("get_order_by_code", status=401) == 1
    assert sandbox.sim.ledger.request_count("get_order_by_code", status=200) == 1
    assert sandbox.sim.ledger.request_count("token") == 1


async def test_token_answer_spelled_access_dash_token(sandbox_factory: SandboxFactory) -> None:
    sandbox: Sandbox = await sandbox_factory(token_field="access-token")
    adapter = await sandbox.adapter()
    seen = await adapter.submit(an_order(), PairState())
    assert seen.status is VendorStatus.SUBMITTED and seen.vendor_order_ref == "1"


class RevokingZakeke(ZakekeSimulator):
    """Grants tokens, then refuses every one of them."""

    def _token(self, request: web.Request) -> None:
        return None


async def test_refused_twice_is_an_auth_outage(sandbox_factory: SandboxFactory) -> None:
    sandbox: Sandbox = await sandbox_factory(RevokingZakeke)
    adapter = await sandbox.adapter()
    with pytest.raises(VendorAuthFailed) as caught:
        await adapter.poll(an_order(), PairState())
    assert caught.value.status == 401 and caught.value.retriable
    assert sandbox.sim.ledger.request_count("get_order_by_code") == 2
    assert sandbox.sim.ledger.request_count("token") == 2


async def test_wrong_credentials_are_an_auth_outage_without_the_secret(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter(client_secret=SecretStr("wrong-secret-value"))
    with pytest.raises(VendorAuthFailed) as caught:
        await adapter.submit(an_order(), PairState())
    assert caught.value.operation == "token"
    assert "wrong-secret-value" not in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)
    assert sandbox.sim.ledger.total_created == 0


# ----------------------------------------------------------------------------- refusals


async def test_refused_registration_is_rejected_with_zakekes_message(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: Sandbox = await sandbox_factory(known_designs={"000-another-design"})
    adapter = await sandbox.adapter()
    with pytest.raises(VendorRejected) as caught:
        await adapter.submit(an_order(), PairState())
    assert caught.value.status == 400
    assert caught.value.operation == "register_order"
    assert caught.value.message == f"Design id: {DESIGN_ID} not found"
    assert sandbox.sim.ledger.total_created == 0


async def test_unknown_design_for_its_price_is_rejected(sandbox_factory: SandboxFactory) -> None:
    sandbox: Sandbox = await sandbox_factory(known_designs={"000-another-design"})
    adapter = await sandbox.adapter()
    with pytest.raises(VendorRejected) as caught:
        await adapter.submit(with_l1(an_order(), design_unit_price=None), PairState())
    assert (caught.value.status, caught.value.operation) == (404, "get_design")
    assert caught.value.message == f"Design id: {DESIGN_ID} not found"
    assert sandbox.sim.ledger.request_count("create_order") == 0


async def test_order_without_zakeke_lines_is_refused_before_calling(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    minimal = OrderCreated.model_validate_json(
        (FIXTURES / "order-created-minimal.json").read_text()
    ).order
    with pytest.raises(VendorRejected):
        await adapter.submit(minimal, PairState())
    assert sandbox.sim.ledger.total_requests == 0


# ----------------------------------------------------------------------------- transient


async def test_outage_is_unavailable(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    sandbox.sim.knobs.outage_on()
    with pytest.raises(VendorUnavailable) as caught:
        await adapter.submit(an_order(), PairState())
    assert caught.value.status == 503 and caught.value.retriable
    sandbox.sim.knobs.outage_off()
    assert (await adapter.submit(an_order(), PairState())).status is VendorStatus.SUBMITTED


async def test_throttling_carries_retry_after(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    order = an_order()
    await adapter.submit(order, PairState())
    sandbox.sim.knobs.throttle(60, retry_after_s=7)
    with pytest.raises(VendorThrottled) as caught:
        await adapter.poll(order, PairState())
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)
    assert caught.value.retriable


async def test_slow_answer_is_a_timeout(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter(request_timeout_s=0.2)
    sandbox.sim.knobs.slow_rate = 1.0
    sandbox.sim.knobs.slow_s = 1.0
    with pytest.raises(VendorUnavailable) as caught:
        await adapter.poll(an_order(), PairState())
    assert "timed out" in caught.value.message


async def test_nobody_listening_is_unavailable(sandbox: Sandbox) -> None:
    adapter = await sandbox.adapter()
    await sandbox.server.stop()
    with pytest.raises(VendorUnavailable):
        await adapter.poll(an_order(), PairState())


class GarbledZakeke(ZakekeSimulator):
    """Answers order reads 200 with a body that is not an order."""

    body = "<html>maintenance</html>"

    async def _get_order_by_code(self, request: web.Request) -> web.Response:
        return web.Response(status=200, text=self.body)


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "", "null", "[]", '"x"'])
async def test_unreadable_answer_is_unavailable_and_never_leads_to_a_post(
    sandbox_factory: SandboxFactory, body: str
) -> None:
    sandbox: Sandbox = await sandbox_factory(GarbledZakeke)
    assert isinstance(sandbox.sim, GarbledZakeke)
    sandbox.sim.body = body
    adapter = await sandbox.adapter()
    with pytest.raises(VendorUnavailable):
        await adapter.poll(an_order(), PairState())
    with pytest.raises(VendorUnavailable):  # a submit after an intent reads first
        await adapter.submit(an_order(), PairState(intent_at=1.0))
    assert sandbox.sim.ledger.request_count("create_order") == 0


# ----------------------------------------------------------------------------- lifecycle


async def test_start_and_stop_are_idempotent(sandbox: Sandbox) -> None:
    adapter: VendorAdapter = ZakekeAdapter(sandbox.settings(), clock=sandbox.clock)
    assert adapter.vendor == "zakeke"
    await adapter.start()
    await adapter.start()
    assert (await adapter.submit(an_order(), PairState())).status is VendorStatus.SUBMITTED
    await adapter.stop()
    await adapter.stop()


async def test_start_without_credentials_fails(sandbox: Sandbox) -> None:
    adapter = ZakekeAdapter(sandbox.settings(client_id=None))
    with pytest.raises(ValueError, match="client_id"):
        await adapter.start()
