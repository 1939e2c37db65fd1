"""SIGUSR1 to a running `orderflow run` writes every asyncio task's stack to its log, as JSON
lines, and the service carries on: the dump an on-call engineer takes from a stuck replica
(`kubectl exec <pod> -- kill -USR1 1`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import pytest
from conftest import service_env

from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

pytestmark = [pytest.mark.integration]


async def test_sigusr1_logs_every_task_stack_and_the_service_carries_on(broker, topics, tmp_path):
    async with SimulatorServer(SmakeSimulator()) as smake:
        env = service_env(broker, topics, smake=smake.base_url) | {"ORDERFLOW_LOG__FORMAT": "json"}
        log_path = tmp_path / "service.log"
        with log_path.open("wb") as log:
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "orderflow", "run", env={**os.environ, **env},
                stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while b'"orderflow started"' not in log_path.read_bytes():
                assert service.returncode is None and time.monotonic() < deadline, log_path.read_text()
                await asyncio.sleep(0.2)
            service.send_signal(signal.SIGUSR1)
            while b"task dump written" not in log_path.read_bytes():
                assert service.returncode is None and time.monotonic() < deadline, log_path.read_text()
                await asyncio.sleep(0.2)
            assert service.returncode is None, "the dump must not stop the service"
            service.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(service.wait(), 30) == 0
        finally:
            if service.returncode is None:
                service.kill()
                await service.wait()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    stacks = {line["task"]: line["stack"] for line in lines if line["event"] == "task stack"}
    assert {"intake", "dispatch-smake", "control", "scheduler-housekeeping"} <= set(stacks)
    assert "_consume_forever" in stacks["intake"]
    assert any(line["event"] == "thread stack" for line in lines)
