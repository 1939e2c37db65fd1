"""The operator commands as an operator runs them: `python -m orderflow <command>` with the
service's ORDERFLOW_* environment, against the embedded broker, the vendor simulators over
HTTP and a running service. What is checked is what the operator would look at: the exit
code, the words printed, the JSON for scripts, and what the vendors and topics then hold."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import aiohttp
import pytest
from conftest import PARTITIONS, produce, running_service, service_env, settings_from

from orderflow.consumer.app import Application
from orderflow.contracts.events import Vendor
from orderflow.sandbox.broker import create_topics
from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.samples import sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

pytestmark = [pytest.mark.integration]


async def orderflow(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run one command as an operator would; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orderflow", *args,
        env={k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")} | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def json_of(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await orderflow(env, *args, "--json")
    try:
        return code, json.loads(out)
    except ValueError:
        raise AssertionError(f"not JSON (exit {code}): {out!r} {err[-2000:]!r}") from None


def smake_env(broker, topics, smake: SimulatorServer[SmakeSimulator]) -> dict[str, str]:
    return service_env(broker, topics, smake=smake.base_url)


async def wait_statuses(reader: OutputReader, pair: tuple[str, str], wanted: list[str],
                        timeout_s: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await reader.poll()
        seen = reader.outcomes.statuses.get(pair, [])
        if seen[-len(wanted):] == wanted:
            return seen
    return reader.outcomes.statuses.get(pair, [])


async def test_a_rejected_smake_pair_is_retried_once_its_cause_is_fixed_and_smake_gets_one_order(
        broker, topics, monkeypatch):
    # The producer knows none of our handles yet: every create is refused with 422.
    smake = SimulatorServer(SmakeSimulator(seconds_per_state=0.3, shipping_methods={"not-yet"},
                                           payment_methods=world.SMAKE_PAYMENT_HANDLES.values()))
    async with smake:
        env = smake_env(broker, topics, smake)
        async with running_service(broker, topics, settings_from(env, monkeypatch)) as (_app, reader):
            event = sample_orders(1, seed=5, prefix="RETRY", shape="smake")[0]
            order_id = event["order"]["order_id"]
            pair = (order_id, "smake")
            await produce(broker.bootstrap_servers, topics.orders_created, [event])
            assert await wait_statuses(reader, pair, ["rejected"]) == ["rejected"]

            # Not retried while the cause is there: nothing to do for a completed or active pair.
            code, inspected = await json_of(env, "inspect", order_id)
            assert code == 0
            assert [(p["vendor"], p["phase"], p["status"]) for p in inspected["pairs"]] == [
                ("smake", "done", "rejected")]
            assert [e["event"]["status"] for e in inspected["events"]] == ["rejected"]

            smake.state.shipping_methods = set(world.SMAKE_SHIPPING_HANDLES.values())
            code, out, err = await orderflow(env, "retry", order_id, "--vendor", "smake")
            assert code == 0, out + err
            assert "smake: reopened" in out

            seen = await wait_statuses(reader, pair, ["completed"])
            assert seen[0] == "rejected" and seen[-1] == "completed", seen
            assert smake.state.ledger.created_count(order_id) == 1

            # The same command again changes nothing more, and says why.
            code, again = await json_of(env, "retry", order_id, "--vendor", "smake", "--wait", "1")
            assert code == 1
            assert again["pairs"] == [{"vendor": "smake", "action": "left_alone",
                                       "why": "ended completed: not retried"}]
            code, inspected = await json_of(env, "inspect", order_id)
            (state,) = inspected["pairs"]
            assert (state["status"], state["round"]) == ("completed", 1)
            # The new round's events are new events: a consumer dropping repeats keeps them.
            ids = [e["event"]["event_id"] for e in inspected["events"]]
            assert len(ids) == len(set(ids))
    assert smake.state.ledger.duplicates() == {}

    code, out, _ = await orderflow(env, "inspect", "NO-SUCH-ORDER")
    assert code == 1 and "NO-SUCH-ORDER" in out


async def test_inspect_right_after_a_rejection_shows_it_whatever_the_batching(
        broker, topics, monkeypatch):
    """On call, right after Smake refused an order: `inspect` once showed the pair still in
    `submit` (the embedded broker lists a partition's end too low after a multi-record
    batch, and the tail went unread), and `retry` answered "still active"."""
    from orderflow.operator.pairs import read_pairs

    smake = SimulatorServer(SmakeSimulator(shipping_methods={"not-yet"},
                                           payment_methods=world.SMAKE_PAYMENT_HANDLES.values()))
    async with smake:
        env = smake_env(broker, topics, smake)
        settings = settings_from(env, monkeypatch)
        app = Application(settings)
        reader = OutputReader(broker.bootstrap_servers, topics.status, topics.print_files_ready)
        await app.start()
        await reader.start()
        try:
            events = sample_orders(40, seed=15, prefix="TAIL", shape="smake")
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            seen: set[str] = set()
            stale: list[str] = []
            deadline = time.monotonic() + 60
            while len(seen) < len(events) and time.monotonic() < deadline:
                await reader.poll()
                for event in events:
                    order_id = event["order"]["order_id"]
                    if order_id in seen or reader.outcomes.terminal_status.get((order_id, "smake")) is None:
                        continue
                    seen.add(order_id)
                    pairs = await read_pairs(settings, order_id)
                    pair = pairs.get(Vendor.SMAKE)
                    state = getattr(pair, "job", None)
                    if state is None or (state.phase, state.status) != ("done", "rejected"):
                        stale.append(f"{order_id}: {state and (state.phase, state.status)}")
        finally:
            await reader.stop()
            await app.stop()
    assert len(seen) == len(events)
    assert stale == [], f"inspect behind the published status for {len(stale)}: {stale[:5]}"


async def test_a_paused_vendor_gets_no_request_and_every_waiting_pair_completes_after_resume(
        broker, topics, monkeypatch):
    smake = SimulatorServer(SmakeSimulator(seconds_per_state=0.2, **world.smake_options()))
    async with smake:
        env = smake_env(broker, topics, smake)
        code, out, err = await orderflow(env, "pause", "smake", "--note", "Smake outage")
        assert code == 0 and "paused on every replica" in out, out + err
        async with running_service(broker, topics, settings_from(env, monkeypatch)) as (app, reader):
            events = sample_orders(20, seed=8, prefix="PAUSE", shape="smake")
            pairs = {(e["order"]["order_id"], "smake") for e in events}
            await produce(broker.bootstrap_servers, topics.orders_created, events)
            async with aiohttp.ClientSession() as http:
                await asyncio.sleep(5)
                metrics = await (await http.get(f"http://127.0.0.1:{app.ops.port}/metrics")).text()
            assert 'orderflow_vendor_paused{reason="operator",vendor="smake"} 1.0' in metrics
            assert smake.state.ledger.request_count() == 0, "a paused vendor was called"
            code, inspected = await json_of(env, "inspect", events[0]["order"]["order_id"])
            assert [(p["phase"], p["status"]) for p in inspected["pairs"]] == [("submit", None)]
            assert inspected["paused"]["smake"]["note"] == "Smake outage"
            code, out, _ = await orderflow(env, "inspect", events[0]["order"]["order_id"])
            assert "smake is PAUSED since" in out and "(Smake outage)" in out

            # The fleet at a glance: this replica, its partitions restored, Smake's pairs
            # overdue (due, not started: the pause), and the pause with its note.
            app.reporter.every_s = 0.5
            await asyncio.sleep(2)
            code, fleet = await json_of(env, "status")
            assert code == 0, fleet
            [replica] = fleet["replicas"]
            assert sorted(replica["partitions"]) == sorted(replica["restored"]) == list(
                range(PARTITIONS))
            assert {p["owner"] for p in fleet["partitions"].values()} == {replica["replica"]}
            assert all(p["restored"] and p["lag"] >= 0 for p in fleet["partitions"].values())
            assert fleet["vendors"]["smake"] == {"waiting": 0, "overdue": len(events),
                                                 "running": 0}
            assert fleet["paused"]["smake"]["note"] == "Smake outage"
            # The group as its coordinator describes it: one member, the replica reporting.
            assert fleet["group_state"]["state"] == "Stable"
            assert fleet["group_state"]["members"] == 1
            code, out, _ = await orderflow(env, "status")
            assert "Stable, 1 members" in out and "do not report" not in out
            assert "1 replicas reporting" in out and "smake: 0 waiting, 20 overdue" in out
            assert "smake is PAUSED since" in out

            code, out, _ = await orderflow(env, "resume", "smake")
            assert code == 0 and "resumed on every replica" in out
            assert await reader.wait_for(pairs, timeout_s=60), "waiting pairs did not all complete"
    assert smake.state.ledger.total_created == len(events)
    assert smake.state.ledger.duplicates() == {}


async def test_a_dead_letter_replayed_after_its_cause_is_fixed_becomes_an_order_once(
        broker, topics, monkeypatch):
    smake = SimulatorServer(SmakeSimulator(seconds_per_state=0.2, **world.smake_options()))
    async with smake:
        env = smake_env(broker, topics, smake)
        small = env | {"ORDERFLOW_KAFKA__MAX_RECORD_BYTES": "1500"}
        event = sample_orders(1, seed=9, prefix="REPLAY", shape="smake")[0]
        # Larger than this deployment allows.
        event["order"]["lines"][0]["metadata"] = {"engraving": "x" * 2000}
        order_id = event["order"]["order_id"]
        app = Application(settings_from(small, monkeypatch))
        await app.start()
        try:
            await produce(broker.bootstrap_servers, topics.orders_created, [event])
            for _ in range(60):
                code, listed = await json_of(env, "dlq", "list", "--reason", "oversized")
                if listed["dead_letters"]:
                    break
                await asyncio.sleep(0.5)
        finally:
            await app.stop()
        (letter,) = listed["dead_letters"]
        assert letter["key"] == order_id and letter["replayed"] is None
        where = f"{letter['partition']}:{letter['offset']}"
        code, out, _ = await orderflow(env, "dlq", "show", where)
        assert code == 0 and "orderflow.error.reason: oversized" in out and order_id in out

        # The cause fixed (a larger record limit), the service runs again, the letter replays.
        for name in list(os.environ):
            if name.startswith("ORDERFLOW_"):
                monkeypatch.delenv(name)
        async with running_service(broker, topics, settings_from(env, monkeypatch)) as (app, reader):
            code, replayed = await json_of(env, "dlq", "replay", "--reason", "oversized")
            assert code == 0
            assert [r["action"] for r in replayed["dead_letters"]] == ["replayed"]
            assert await reader.wait_for({(order_id, "smake")}, timeout_s=60)
            code, twice = await json_of(env, "dlq", "replay", "--offset", where)
            assert [(r["action"], r["why"]) for r in twice["dead_letters"]] == [
                ("skipped", "replayed before")]
    assert smake.state.ledger.created_count(order_id) == 1
    code, listed = await json_of(env, "dlq", "list")
    assert listed["dead_letters"][0]["replayed"]["to_topic"] == topics.orders_created
    code, out, _ = await orderflow(env, "dlq", "show", "999999")
    assert code == 1 and "999999" in out


async def test_a_replay_whose_cause_is_not_fixed_is_not_replayed_again_unless_asked(
        broker, topics, monkeypatch):
    """Three `dlq replay` runs once gave four letters of one bad record: each run replayed
    the previous replay's failure."""
    env = service_env(broker, topics)
    app = Application(settings_from(env, monkeypatch))
    await app.start()
    try:
        await produce(broker.bootstrap_servers, topics.orders_created, [],
                      raw=[(b"BROKEN-1", b'{"event_type": "order.created", "not": "an order"}')])

        async def letters(count: int) -> list[dict[str, Any]]:
            for _ in range(60):
                _, listed = await json_of(env, "dlq", "list")
                if len(listed["dead_letters"]) >= count:
                    found: list[dict[str, Any]] = listed["dead_letters"]
                    return found
                await asyncio.sleep(0.5)
            raise AssertionError(f"fewer than {count} dead letters")

        await letters(1)
        code, first = await json_of(env, "dlq", "replay")
        assert code == 0 and [r["action"] for r in first["dead_letters"]] == ["replayed"]
        second_letter = (await letters(2))[-1]
        for _ in range(2):  # later runs: the replay's failure is not replayed again
            code, again = await json_of(env, "dlq", "replay")
            actions = sorted((r["action"], r["why"].split(":")[0]) for r in again["dead_letters"])
            assert actions == [("skipped", "it is the replay of "
                                f"{topics.dead_letter}/{first['dead_letters'][0]['partition']}/"
                                f"{first['dead_letters'][0]['offset']} failing again"),
                               ("skipped", "replayed before")], actions
        await asyncio.sleep(2)
        assert len(await letters(2)) == 2, "no further letter of the same record"
        code, forced = await json_of(env, "dlq", "replay", "--again", "--offset",
                                     f"{second_letter['partition']}:{second_letter['offset']}")
        assert [r["action"] for r in forced["dead_letters"]] == ["replayed"]
    finally:
        await app.stop()


async def test_check_passes_on_a_sound_deployment_and_names_each_problem(broker, topics, monkeypatch):
    smake = SimulatorServer(SmakeSimulator(**world.smake_options()))
    async with smake:
        env = smake_env(broker, topics, smake)
        code, out, err = await orderflow(env, "check")
        assert code == 0, out + err
        assert "FAIL" not in out and "PASS  vendor smake" in out

        wrong_key = env | {"ORDERFLOW_SMAKE__API_KEY": "not-the-key"}
        code, out, _ = await orderflow(wrong_key, "check")
        assert code == 1
        assert "FAIL  vendor smake" in out and "ORDERFLOW_SMAKE__API_KEY" in out

        missing = env | {"ORDERFLOW_TOPICS__DEAD_LETTER": "no.such.topic"}
        code, out, _ = await orderflow(missing, "check")
        assert code == 1 and "FAIL  topic dead_letter" in out and "'no.such.topic'" in out

        tracking = f"{topics.tracking}.wrong"
        await create_topics(broker.bootstrap_servers, [(tracking, PARTITIONS + 1, None)])
        wrong_count = env | {"ORDERFLOW_TOPICS__TRACKING": tracking}
        code, out, _ = await orderflow(wrong_count, "check")
        assert code == 1 and "FAIL  topic tracking" in out
        assert f"has {PARTITIONS + 1} partitions" in out

        unreachable = env | {"ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
        code, out, _ = await orderflow(unreachable, "check")
        assert code == 1 and "FAIL  brokers" in out and "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS" in out

        code, _, err = await orderflow(env | {"ORDERFLOW_POLL__DEADLINE": "1"}, "check")
        assert code == 2 and "ORDERFLOW_POLL__DEADLINE" in err

    code, _, err = await orderflow(env, "retry")
    assert code == 2 and "order_id" in err
