"""ReevooAdapter against the Reevoo simulator over real HTTP on loopback: the simulator is an
independent reading of Reevoo's page, so these tests check the adapter against the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from testkit import RecordingObserver, an_order

from orderflow.adapters.errors import VendorAuthFailed, VendorRejected, VendorThrottled, VendorUnavailable
from orderflow.adapters.outcomes import PairState
from orderflow.adapters.reevoo import ReevooAdapter
from orderflow.config.settings import ReevooSettings
from orderflow.contracts.events import Order, VendorStatus
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.reevoo import INVALID_TRKREF, ReevooSimulator

pytestmark = pytest.mark.integration

API_KEY, API_SECRET = "reevoo-it-key", "reevoo-it-secret"


@dataclass
class Rig:
    simulator: ReevooSimulator
    server: SimulatorServer[ReevooSimulator]
    adapter: ReevooAdapter
    observer: RecordingObserver

    def settings(self, **changes: Any) -> ReevooSettings:
        values: dict[str, Any] = {
            "base_url": self.server.base_url, "api_key": SecretStr(API_KEY),
            "api_secret": SecretStr(API_SECRET), "trkref": "trkref123", "request_timeout_s": 2.0,
        }
        return ReevooSettings(**(values | changes))

    async def submit_with(self, settings: ReevooSettings, order: Order) -> None:
        adapter = ReevooAdapter(settings)
        await adapter.start()
        try:
            await adapter.submit(order, PairState())
        finally:
            await adapter.stop()


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    simulator = ReevooSimulator(api_key=API_KEY, api_secret=API_SECRET, trkrefs={"TRKREF123"},
                                seed=3)
    async with SimulatorServer(simulator) as server:
        observer = RecordingObserver()
        adapter = ReevooAdapter(
            ReevooSettings(base_url=server.base_url, api_key=SecretStr(API_KEY),
                           api_secret=SecretStr(API_SECRET), trkref="trkref123",
                           request_timeout_s=2.0),
            observer,
        )
        await adapter.start()
        try:
            yield Rig(simulator, server, adapter, observer)
        finally:
            await adapter.stop()
            await adapter.stop()  # idempotent


async def test_202_completes_with_reevoos_uuid(rig: Rig) -> None:
    observation = await rig.adapter.submit(an_order(), PairState())

    (submission,) = rig.simulator.submissions_for("SHOP-100234")
    assert observation.status is VendorStatus.COMPLETED
    assert observation.vendor_order_ref == submission.id
    assert observation.vendor_state is None  # the 202 carries no state word
    assert submission.trkref == "TRKREF123"
    assert submission.body["order_date"] == "22-11-2026"
    assert [item["price"] for item in submission.body["order_items"]] == [
        "12,00", "9,90", "15,00"
    ]
    assert rig.observer.calls == [("reevoo", "submit_order", "ok")]


async def test_minimal_order_is_accepted(rig: Rig) -> None:
    observation = await rig.adapter.submit(an_order("order-created-minimal.json"), PairState())

    assert observation.status is VendorStatus.COMPLETED
    assert rig.simulator.ledger.created_count("SHOP-100235") == 1


async def test_metadata_keys_are_reduced_to_what_reevoo_accepts(rig: Rig) -> None:
    lines = [{"line_id": "1", "sku": "BOOK-9", "quantity": 1, "unit_price": "10",
              "metadata": {"Gift Wrap": "yes", "Größe": "M", "field_1": "Value 1"}}]

    observation = await rig.adapter.submit(
        an_order("order-created-minimal.json", lines=lines), PairState()
    )

    assert observation.status is VendorStatus.COMPLETED
    (submission,) = rig.simulator.submissions
    assert submission.body["order_items"] == [{
        "sku": "BOOK-9", "price": "10", "currency": "GBP",
        "metadata": {"giftwrap": "yes", "groe": "M", "field1": "Value 1"},
    }]


async def test_after_a_202_nothing_is_sent_again(rig: Rig) -> None:
    order = an_order()
    accepted = await rig.adapter.submit(order, PairState())

    again = await rig.adapter.poll(order, PairState(accepted.vendor_order_ref,
                                                    accepted.vendor_state))

    assert again.status is VendorStatus.COMPLETED
    assert again.vendor_order_ref == accepted.vendor_order_ref
    assert rig.simulator.ledger.total_requests == 1
    assert rig.simulator.ledger.duplicates() == {}


async def test_400_invalid_trkref_is_rejected_with_reevoos_message(rig: Rig) -> None:
    with pytest.raises(VendorRejected) as caught:
        await rig.submit_with(rig.settings(trkref="OTHER"), an_order())

    assert caught.value.status == 400
    assert caught.value.message == INVALID_TRKREF
    assert rig.simulator.ledger.total_created == 0


async def test_422_is_rejected_with_message_and_errors(rig: Rig) -> None:
    order = an_order(customer={"email": "not-an-email"})

    with pytest.raises(VendorRejected) as caught:
        await rig.adapter.submit(order, PairState())

    assert caught.value.status == 422
    assert "customer order is invalid" in caught.value.message
    assert "customer.email must be a valid email address" in caught.value.message
    assert rig.simulator.ledger.total_created == 0


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_transient_and_nothing_is_accepted(rig: Rig, status: int) -> None:
    rig.simulator.knobs.error_rate = 1.0
    rig.simulator.knobs.error_statuses = (status,)

    with pytest.raises(VendorUnavailable) as caught:
        await rig.adapter.submit(an_order(), PairState())

    assert caught.value.status == status and caught.value.retriable
    assert rig.simulator.ledger.total_created == 0


async def test_outage_then_recovery_sends_the_order_once(rig: Rig) -> None:
    order = an_order()
    rig.simulator.knobs.outage_on()
    with pytest.raises(VendorUnavailable):
        await rig.adapter.submit(order, PairState())
    rig.simulator.knobs.outage_off()

    observation = await rig.adapter.submit(order, PairState())

    assert observation.status is VendorStatus.COMPLETED
    assert rig.simulator.ledger.created_count("SHOP-100234") == 1


async def test_throttling_is_transient_with_retry_after(rig: Rig) -> None:
    rig.simulator.knobs.throttle(60, retry_after_s=5)

    with pytest.raises(VendorThrottled) as caught:
        await rig.adapter.submit(an_order(), PairState())

    assert caught.value.retry_after == 5.0


async def test_wrong_credentials_are_an_auth_failure(rig: Rig) -> None:
    with pytest.raises(VendorAuthFailed) as caught:
        await rig.submit_with(rig.settings(api_secret=SecretStr("wrong-secret")), an_order())

    assert caught.value.status == 401
    assert "wrong-secret" not in str(caught.value) and API_KEY not in str(caught.value)


async def test_feature_not_enabled_is_a_refusal_not_retried(rig: Rig) -> None:
    """Vendor notes: "403 `Access denied` when the feature is not enabled for the
    organisation": the pair ends rejected, saying so, instead of being retried for days."""
    rig.simulator.access_denied = True

    with pytest.raises(VendorRejected, match="not enabled for the organisation") as caught:
        await rig.adapter.submit(an_order(), PairState())

    assert caught.value.status == 403 and not caught.value.retriable


async def test_a_slow_answer_is_a_timeout(rig: Rig) -> None:
    rig.simulator.knobs.slow_rate = 1.0
    rig.simulator.knobs.slow_s = 2.0

    with pytest.raises(VendorUnavailable, match="timed out"):
        await rig.submit_with(rig.settings(request_timeout_s=0.2), an_order())

    assert rig.simulator.ledger.total_created == 0


async def test_nobody_listening_is_transient() -> None:
    async with SimulatorServer(ReevooSimulator()) as server:
        base_url = server.base_url
    adapter = ReevooAdapter(ReevooSettings(base_url=base_url, api_key=SecretStr(API_KEY),
                                           api_secret=SecretStr(API_SECRET), trkref="TRKREF123"))
    await adapter.start()
    try:
        with pytest.raises(VendorUnavailable):
            await adapter.submit(an_order(), PairState())
    finally:
        await adapter.stop()
