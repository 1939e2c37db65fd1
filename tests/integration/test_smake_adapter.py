"""SmakeAdapter against the Smake simulator over real HTTP on loopback: the simulator is an
independent reading of Smake's pages, so these tests check the adapter against the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from conftest import EnginePair
from pydantic import SecretStr
from testkit import RecordingObserver, an_order

from orderflow.adapters.errors import VendorAuthFailed, VendorRejected, VendorThrottled, VendorUnavailable
from orderflow.adapters.outcomes import Observation, PairState
from orderflow.adapters.smake import SmakeAdapter, smake_create_body
from orderflow.config.settings import SmakeSettings
from orderflow.contracts.events import Order, VendorStatus
from orderflow.sandbox.simulators.base import ManualClock, SimulatorServer
from orderflow.sandbox.simulators.smake import FAILURE_MESSAGE, SmakeSimulator

pytestmark = pytest.mark.integration

API_KEY = "smake-it-key"
SECONDS_PER_STATE = 10.0


@dataclass
class Rig:
    simulator: SmakeSimulator
    server: SimulatorServer[SmakeSimulator]
    clock: ManualClock
    adapter: SmakeAdapter
    observer: RecordingObserver

    def settings(self, **changes: Any) -> SmakeSettings:
        values: dict[str, Any] = {"base_url": self.server.base_url,
                                  "api_key": SecretStr(API_KEY), "request_timeout_s": 2.0}
        return SmakeSettings(**(values | changes))

    async def seed_order(self, order: Order) -> int:
        """Create an order at Smake the way another writer would (not through the adapter)."""
        async with aiohttp.ClientSession() as session, session.post(
            self.server.base_url + "/orders",
            json=smake_create_body(order, self.settings()),
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response:
            assert response.status == 202
            return int(response.headers["X-Identifier"])


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock()
    simulator = SmakeSimulator(api_key=API_KEY, seconds_per_state=SECONDS_PER_STATE,
                               clock=clock, seed=7)
    async with SimulatorServer(simulator) as server:
        observer = RecordingObserver()
        adapter = SmakeAdapter(
            SmakeSettings(base_url=server.base_url, api_key=SecretStr(API_KEY),
                          request_timeout_s=2.0),
            observer,
        )
        await adapter.start()
        try:
            yield Rig(simulator, server, clock, adapter, observer)
        finally:
            await adapter.stop()
            await adapter.stop()  # idempotent


async def test_create_then_every_state_through_to_completed(rig: Rig) -> None:
    order = an_order()

    submitted = await rig.adapter.submit(order, PairState())

    assert submitted.status is VendorStatus.SUBMITTED and submitted.vendor_state == "draft"
    assert submitted.vendor_order_ref is not None
    assert rig.simulator.ledger.created_count("SHOP-100234") == 1
    (created,) = rig.simulator.orders_with_external_identifier("SHOP-100234")
    assert str(created.id) == submitted.vendor_order_ref
    # What Smake received: our Smake lines only, billing = shipping, handles from the order.
    assert [item["quantity"] for item in created.request["items"]] == [2, 1]
    assert created.request["billing_address"] == created.request["shipping_address"]

    seen: list[Observation] = []
    state = PairState(submitted.vendor_order_ref, submitted.vendor_state)
    for _ in range(5):
        observation = await rig.adapter.poll(order, state)
        seen.append(observation)
        state = PairState(observation.vendor_order_ref, observation.vendor_state)
        rig.clock.advance(SECONDS_PER_STATE)

    assert [(o.status, o.vendor_state) for o in seen] == [
        (VendorStatus.SUBMITTED, "draft"),
        (VendorStatus.IN_PROGRESS, "checking"),
        (VendorStatus.IN_PROGRESS, "preparing"),
        (VendorStatus.IN_PROGRESS, "prepared"),
        (VendorStatus.COMPLETED, "completed"),
    ]
    assert seen[-1].tracking_numbers and all(seen[-1].tracking_numbers)
    assert seen[0].tracking_numbers == ()
    assert rig.simulator.ledger.total_created == 1
    assert rig.simulator.ledger.duplicates() == {}
    # A first submit asks nothing first: no intent was recorded, so nobody can have created it.
    assert {op for _, op, _ in rig.observer.calls} == {"create_order", "get_order"}
    assert {outcome for _, _, outcome in rig.observer.calls} == {"ok"}


async def test_failed_carries_smakes_failure_message(rig: Rig) -> None:
    rig.simulator.failure_rate = 1.0
    order = an_order()
    submitted = await rig.adapter.submit(order, PairState())

    rig.clock.advance(2 * SECONDS_PER_STATE)
    observation = await rig.adapter.poll(order, PairState(submitted.vendor_order_ref, "draft"))

    assert observation.status is VendorStatus.FAILED
    assert observation.vendor_state == "failed"
    assert observation.reason == FAILURE_MESSAGE


async def test_cancelled_at_smake_is_cancelled(rig: Rig) -> None:
    order = an_order()
    submitted = await rig.adapter.submit(order, PairState())
    async with aiohttp.ClientSession() as session, session.put(
        f"{rig.server.base_url}/orders/{submitted.vendor_order_ref}/cancel",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as response:
        assert response.status == 200

    observation = await rig.adapter.poll(order, PairState(submitted.vendor_order_ref, "draft"))

    assert observation.status is VendorStatus.CANCELLED


async def test_a_second_submit_adopts_the_order_and_creates_nothing(rig: Rig) -> None:
    order, pair = an_order(), EnginePair()
    first = await rig.adapter.submit(order, pair.state())
    rig.clock.advance(SECONDS_PER_STATE)

    again = await rig.adapter.submit(order, pair.state())

    assert again.vendor_order_ref == first.vendor_order_ref
    assert (again.status, again.vendor_state) == (VendorStatus.IN_PROGRESS, "checking")
    assert rig.simulator.ledger.created_count("SHOP-100234") == 1
    assert rig.simulator.ledger.request_count("create_order") == 1


async def test_an_order_smake_already_holds_is_adopted_lowest_id_first(rig: Rig) -> None:
    order = an_order()
    first_id = await rig.seed_order(order)
    second_id = await rig.seed_order(order)  # Smake does not check uniqueness
    assert first_id < second_id

    # Seeded orders stand for a create of ours whose answer was lost: an intent exists.
    observation = await rig.adapter.submit(order, PairState(intent_at=1.0))

    assert observation.vendor_order_ref == str(first_id)
    assert rig.simulator.ledger.created_count("SHOP-100234") == 2  # none added by us
    assert rig.simulator.ledger.request_count("create_order") == 2


@pytest.mark.parametrize("mode", ["error", "drop"])
async def test_a_create_lost_after_smake_acted_is_adopted_on_retry(rig: Rig, mode: str) -> None:
    rig.simulator.knobs.fail_after_effect_rate = 1.0
    rig.simulator.knobs.fail_after_effect_mode = "error" if mode == "error" else "drop"
    order, pair = an_order(), EnginePair()

    with pytest.raises(VendorUnavailable):
        await rig.adapter.submit(order, pair.state())
    rig.simulator.knobs.fail_after_effect_rate = 0.0
    observation = await rig.adapter.submit(order, pair.state())

    assert observation.status is VendorStatus.SUBMITTED
    assert rig.simulator.ledger.created_count("SHOP-100234") == 1
    assert rig.simulator.ledger.duplicates() == {}


async def test_an_order_without_shipping_address_never_reaches_smake(rig: Rig) -> None:
    with pytest.raises(VendorRejected, match="shipping_address"):
        await rig.adapter.submit(an_order(shipping_address=None), PairState())

    assert rig.simulator.ledger.total_requests == 0


async def test_422_is_rejected_with_smakes_message(rig: Rig) -> None:
    address = an_order().shipping_address
    assert address is not None
    order = an_order(shipping_address=address.model_dump() | {"phone": None})

    with pytest.raises(VendorRejected) as caught:
        await rig.adapter.submit(order, PairState())

    assert caught.value.status == 422
    assert "shipping_address.phone" in caught.value.message
    assert rig.simulator.ledger.total_created == 0


async def test_unknown_payment_handle_is_rejected_with_the_field(rig: Rig) -> None:
    rig.simulator.payment_methods = {"invoice"}

    with pytest.raises(VendorRejected, match=r"payments\.0\.payment_method\.handle"):
        await rig.adapter.submit(an_order(payment_method="bitcoin"), PairState())


async def test_outage_is_transient_and_creates_nothing(rig: Rig) -> None:
    rig.simulator.knobs.outage_on()

    with pytest.raises(VendorUnavailable) as caught:
        await rig.adapter.submit(an_order(), PairState())

    assert caught.value.status == 503 and caught.value.retriable
    assert rig.simulator.ledger.total_created == 0


async def test_poll_during_an_outage_is_transient(rig: Rig) -> None:
    order = an_order()
    submitted = await rig.adapter.submit(order, PairState())
    rig.simulator.knobs.outage_on()

    with pytest.raises(VendorUnavailable):
        await rig.adapter.poll(order, PairState(submitted.vendor_order_ref, "draft"))


async def test_throttling_is_transient_with_retry_after(rig: Rig) -> None:
    rig.simulator.knobs.throttle(60, retry_after_s=4)

    with pytest.raises(VendorThrottled) as caught:
        await rig.adapter.submit(an_order(), PairState())

    assert caught.value.status == 429 and caught.value.retry_after == 4.0


async def test_a_slow_answer_is_a_timeout(rig: Rig) -> None:
    adapter = SmakeAdapter(rig.settings(request_timeout_s=0.2))
    rig.simulator.knobs.slow_rate = 1.0
    rig.simulator.knobs.slow_s = 2.0
    await adapter.start()
    try:
        with pytest.raises(VendorUnavailable, match="timed out"):
            await adapter.submit(an_order(), PairState())
    finally:
        await adapter.stop()


async def test_a_wrong_api_key_is_an_auth_failure(rig: Rig) -> None:
    adapter = SmakeAdapter(rig.settings(api_key=SecretStr("wrong-key")))
    await adapter.start()
    try:
        with pytest.raises(VendorAuthFailed) as caught:
            await adapter.submit(an_order(), PairState())
    finally:
        await adapter.stop()

    assert caught.value.status == 401 and caught.value.retriable
    assert "wrong-key" not in str(caught.value)


async def test_an_unknown_order_ref_is_transient(rig: Rig) -> None:
    with pytest.raises(VendorUnavailable) as caught:
        await rig.adapter.poll(an_order(), PairState("999", "draft"))

    assert caught.value.status == 404


async def test_a_wrong_base_url_is_an_outage_not_a_rejection(rig: Rig) -> None:
    adapter = SmakeAdapter(rig.settings(base_url=rig.server.root_url + "/v2/apps/404"))
    await adapter.start()
    try:
        with pytest.raises(VendorUnavailable, match="BASE_URL"):
            await adapter.submit(an_order(), PairState())
    finally:
        await adapter.stop()


async def test_nobody_listening_is_transient() -> None:
    simulator = SmakeSimulator(api_key=API_KEY)
    async with SimulatorServer(simulator) as server:
        base_url = server.base_url
    adapter = SmakeAdapter(SmakeSettings(base_url=base_url, api_key=SecretStr(API_KEY)))
    await adapter.start()
    try:
        with pytest.raises(VendorUnavailable):
            await adapter.submit(an_order(), PairState())
    finally:
        await adapter.stop()
