"""`orderflow run` against brokers and topics that are not as configured: each case ends as
the contract says (exit 2, one line naming the variable or topic), with no traceback and no
"Unclosed ..." noise, and a broker that is merely absent for a while is waited for."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from conftest import needs, service_env

from orderflow.sandbox.broker import create_topics, free_port
from orderflow.sandbox.processes import start_service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
NOBODY = "127.0.0.1:9"  # discard port: nothing listens, connections are refused at once


def run_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORDERFLOW_")}
    return {**base, **env}


def run_service(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`orderflow run` with these settings, to its exit (a start-up refusal ends it)."""
    return subprocess.run([sys.executable, "-m", "orderflow", "run"], env=run_env(env), cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def the_last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("orderflow:")]
    assert len(lines) == 1, stderr
    return lines[0]


def assert_quiet(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Unclosed" not in stderr, stderr


async def probe(session: aiohttp.ClientSession, port: int, path: str) -> int | None:
    try:
        async with session.get(f"http://127.0.0.1:{port}{path}") as answer:
            return answer.status
    except (aiohttp.ClientError, OSError):
        return None


async def test_an_unreachable_broker_is_waited_for_then_named_with_exit_2(
        broker, topics, tmp_path: Path) -> None:
    port = free_port()
    env = service_env(broker, topics)
    env.update({"ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": NOBODY, "ORDERFLOW_HTTP__PORT": str(port),
                "ORDERFLOW_KAFKA__STARTUP_TIMEOUT_S": "4"})
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        service = start_service(env, log)
    seen: list[tuple[int | None, int | None]] = []
    async with aiohttp.ClientSession() as session:
        while service.running:
            health, ready = await probe(session, port, "/healthz"), await probe(session, port, "/readyz")
            if health is not None:
                seen.append((health, ready))
            await asyncio.sleep(0.2)
    stderr = log_path.read_text()
    # Alive and not ready all along: Kubernetes does not restart it for the brokers' absence.
    assert seen and set(seen) == {(200, 503)}, seen
    assert service.stop() == 2, stderr
    line = the_last_line(stderr)
    assert "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9" in line
    assert "ORDERFLOW_KAFKA__STARTUP_TIMEOUT_S=4s" in line
    assert "no broker answers yet, still trying" in stderr  # the warning while it waits
    assert_quiet(stderr)


async def test_a_broker_that_comes_up_late_is_joined(broker, topics, tmp_path: Path) -> None:
    needs(broker, "can_freeze")  # a broker process of this machine, to start late
    port = free_port()
    late = type(broker)(port=free_port())
    env = service_env(late, topics)
    env.update({"ORDERFLOW_HTTP__PORT": str(port), "ORDERFLOW_KAFKA__STARTUP_TIMEOUT_S": "60",
                "ORDERFLOW_KAFKA__GROUP_ID": "late"})
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        service = start_service(env, log)
    try:
        # The service tries again after 0.5, 1, 2, 4 and 8 s. The broker starts just after
        # the try at 7.5 s, so that it and the topics the service needs have 8 s before the
        # next one (started at a guessed moment, they raced a try on a loaded machine).
        for _ in range(300):
            if '"waited_s": 7.5' in log_path.read_text():
                break
            assert service.running, log_path.read_text()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the service never tried a 5th time: " + log_path.read_text())
        with late:
            await create_topics(late.bootstrap_servers, [(topics.orders_created, 2, None)])
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 60
                while await probe(session, port, "/readyz") != 200:
                    assert service.running, log_path.read_text()
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.3)
            code = service.stop()
    finally:
        service.stop()
    stderr = log_path.read_text()
    assert code == 0, stderr
    assert_quiet(stderr)


def test_a_broker_that_refuses_idempotent_producing_is_named_with_exit_2(broker, topics) -> None:
    if broker.abilities.idempotence:
        pytest.skip(f"the {broker.abilities.name} broker grants idempotent producing")
    env = service_env(broker, topics)
    env["ORDERFLOW_KAFKA__ENABLE_IDEMPOTENCE"] = "true"  # the embedded broker lacks it
    done = run_service(env)
    assert done.returncode == 2, done.stderr
    line = the_last_line(done.stderr)
    assert "refuses idempotent producing" in line
    assert "ORDERFLOW_KAFKA__ENABLE_IDEMPOTENCE=false" in line
    assert_quiet(done.stderr)


@pytest.mark.kafka_semantics
def test_a_replication_factor_the_cluster_cannot_give_is_named_with_exit_2(broker, topics) -> None:
    """A broker that refuses it (the embedded one creates the topic anyway): orderflow's
    start-up says which setting to change."""
    needs(broker, "replication")
    env = service_env(broker, topics)
    env["ORDERFLOW_KAFKA__TRACKING_REPLICATION_FACTOR"] = "3"
    done = run_service(env)
    assert done.returncode == 2, done.stderr
    line = the_last_line(done.stderr)
    assert "ORDERFLOW_KAFKA__TRACKING_REPLICATION_FACTOR=3" in line and topics.tracking in line, line
    assert_quiet(done.stderr)


def test_a_missing_input_topic_is_named_with_exit_2(broker, topics) -> None:
    env = service_env(broker, topics)
    env["ORDERFLOW_TOPICS__ORDERS_CREATED"] = "no.such.topic"
    done = run_service(env)
    assert done.returncode == 2, done.stderr
    line = the_last_line(done.stderr)
    assert "'no.such.topic' does not exist" in line and "ORDERFLOW_TOPICS__ORDERS_CREATED" in line
    assert_quiet(done.stderr)


def test_a_port_already_taken_is_named_with_exit_2(broker, topics) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = service_env(broker, topics)
        env["ORDERFLOW_HTTP__PORT"] = str(taken.getsockname()[1])
        done = run_service(env)
    assert done.returncode == 2, done.stderr
    line = the_last_line(done.stderr)
    assert "cannot listen on 127.0.0.1:" in line and "ORDERFLOW_HTTP__PORT" in line
    assert_quiet(done.stderr)


async def test_a_group_whose_members_assign_by_another_strategy_keeps_it_out_and_says_so(
        broker, topics, tmp_path: Path) -> None:
    """An upgrade from a release that assigned round-robin, rolled one pod at a time: Kafka
    keeps the new replica out of the group while an old member is in it. The new replica
    stays alive and unready, logs why (naming the group), and takes nothing from the old."""
    env = service_env(broker, topics)
    port = free_port()
    env["ORDERFLOW_HTTP__PORT"] = str(port)
    old = AIOKafkaConsumer(topics.orders_created, bootstrap_servers=broker.bootstrap_servers,
                           group_id=env["ORDERFLOW_KAFKA__GROUP_ID"], enable_auto_commit=False)
    await old.start()
    log_path = tmp_path / "service.log"
    try:
        while not old.assignment():
            await old.getmany(timeout_ms=200)
        held = set(old.assignment())
        with log_path.open("wb") as log:
            service = start_service(env, log)
        seen: list[int | None] = []
        said = "the consumer group's members assign partitions by another strategy"
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while said not in log_path.read_text() and time.monotonic() < deadline:
                await old.getmany(timeout_ms=200)  # the old member stays alive meanwhile
                seen.append(await probe(session, port, "/readyz"))
            seen.append(await probe(session, port, "/readyz"))
        assert said in log_path.read_text(), log_path.read_text()[-3000:]
        assert service.running and 200 not in seen, seen
        assert set(old.assignment()) == held
        assert env["ORDERFLOW_KAFKA__GROUP_ID"] in next(
            line for line in log_path.read_text().splitlines() if said in line)
        assert service.stop() == 0, log_path.read_text()[-3000:]
    finally:
        await old.stop()
    assert_quiet(log_path.read_text())
