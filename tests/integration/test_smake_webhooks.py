"""Smake's webhooks as the fast path: with polling stretched to minutes, a state change
reaches `orders.status` within seconds of Smake's delivery; forged deliveries are refused
and make no call to Smake; repeats and out-of-order deliveries change nothing by themselves.

The simulator sends the webhooks itself (smake_webhooks.py), to the service's real
endpoint, with repeats, random delays and forgeries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import aiohttp
import pytest
from conftest import produce, running_service, service_env, settings_from

from orderflow.consumer.app import Application
from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

pytestmark = [pytest.mark.integration]

TOKEN = "whsec-test-token"


def signed(body: bytes, token: str = TOKEN) -> dict[str, str]:
    return {"X-Signature": hmac.new(token.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


def slow_polling(env: dict[str, str]) -> dict[str, str]:
    """Polling stretched far past the test: only webhooks can bring news in time."""
    return env | {"ORDERFLOW_POLL__INITIAL_INTERVAL_S": "600", "ORDERFLOW_POLL__MAX_INTERVAL_S": "600",
                  "ORDERFLOW_SMAKE__WEBHOOK_TOKEN": TOKEN}


async def test_webhooks_bring_state_changes_in_seconds_while_polling_is_slow(broker, topics, monkeypatch):
    simulator = SmakeSimulator(seconds_per_state={"draft": 1, "checking": 1, "preparing": 1,
                                                  "prepared": 2},
                               seed=4, **world.smake_options())
    async with SimulatorServer(simulator) as smake:
        env = slow_polling(service_env(broker, topics, smake=smake.base_url))
        app = Application(settings_from(env, monkeypatch))
        reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
        await app.start()
        await reader.start()
        simulator.webhooks.configure(url=f"http://127.0.0.1:{app.ops.port}/webhooks/smake",
                                     token=TOKEN, repeat_rate=0.5, forged_rate=0.5,
                                     max_delay_s=0.5)
        try:
            events = sample_orders(10, seed=12, prefix="HOOK", shape="smake")
            pairs = {(e["order"]["order_id"], "smake") for e in events}
            started = time.monotonic()
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            # Created at once, then prepared at ~3 s and completed at ~5 s: with polls 600 s
            # apart, only the webhooks can bring `completed` within the minute.
            assert await reader.wait_for(pairs, timeout_s=60), "webhooks did not bring completion"
            took = time.monotonic() - started
        finally:
            await reader.stop()
            await app.stop()
    outcomes = reader.outcomes
    assert {outcomes.terminal_status[p] for p in pairs} == {"completed"}
    assert took < 30, f"completion took {took:.0f}s"
    stats = simulator.webhooks.stats
    assert stats.forged > 0 and stats.forged_acknowledged == 0
    assert stats.repeats > 0
    assert simulator.ledger.duplicates() == {}
    # Each order: one create, then a read per hint (about two: prepared and completed; a
    # repeat that comes after its hint was served may ask once more): not one per poll.
    gets = simulator.ledger.request_count("get_order") + simulator.ledger.request_count("list_orders")
    assert gets <= len(pairs) * 6, gets


async def test_forged_and_unsigned_deliveries_are_refused_and_make_no_call(broker, topics, monkeypatch):
    simulator = SmakeSimulator(seconds_per_state=30, **world.smake_options())
    async with SimulatorServer(simulator) as smake:
        env = slow_polling(service_env(broker, topics, smake=smake.base_url))
        async with running_service(broker, topics, settings_from(env, monkeypatch)) as (app, reader):
            event = sample_orders(1, seed=13, prefix="FORGE", shape="smake")[0]
            order_id = event["order"]["order_id"]
            await produce(broker.bootstrap_servers, topics.orders_created, [event])
            for _ in range(100):
                await reader.poll()
                if reader.outcomes.statuses.get((order_id, "smake")):
                    break
            (smake_order,) = simulator.orders_with_external_identifier(order_id)
            requests_before = simulator.ledger.request_count()
            url = f"http://127.0.0.1:{app.ops.port}/webhooks/smake"
            claim = json.dumps({"event": "order.completed", "data": {
                "id": smake_order.id, "external_identifier": order_id, "state": "completed"}}).encode()
            async with aiohttp.ClientSession() as http:
                answers = [
                    await http.post(url, data=claim),
                    await http.post(url, data=claim, headers=signed(claim, "wrong-token")),
                    await http.post(url, data=claim, headers={"X-Signature": "00" * 32}),
                    await http.post(url, data=claim + b" ", headers=signed(claim)),
                ]
                assert [a.status for a in answers] == [401, 401, 401, 401]
                await asyncio.sleep(3)
                assert simulator.ledger.request_count() == requests_before, "a forgery made a call"
                # A genuine, signed delivery for a state the order is not in: one read of
                # the order, and nothing announced, as Smake says it is still in draft.
                answer = await http.post(url, data=claim, headers=signed(claim))
                assert answer.status == 202
                repeat = await http.post(url, data=claim, headers=signed(claim))
                assert repeat.status == 200
                await asyncio.sleep(3)
                assert simulator.ledger.request_count("get_order") == 1
                junk = b"[1, 2"
                assert (await http.post(url, data=junk, headers=signed(junk))).status == 400
                other = json.dumps({"event": "variant.created", "data": {"id": 5}}).encode()
                assert (await http.post(url, data=other, headers=signed(other))).status == 200
            await reader.poll()
            assert reader.outcomes.statuses[(order_id, "smake")] == ["submitted"]


async def test_without_a_token_the_endpoint_is_not_there(broker, topics, monkeypatch):
    async with SimulatorServer(SmakeSimulator(**world.smake_options())) as smake:
        env = service_env(broker, topics, smake=smake.base_url)
        app = Application(settings_from(env, monkeypatch))
        await app.start()
        try:
            async with aiohttp.ClientSession() as http:
                answer = await http.post(f"http://127.0.0.1:{app.ops.port}/webhooks/smake", data=b"{}")
                assert answer.status == 404
        finally:
            await app.stop()
