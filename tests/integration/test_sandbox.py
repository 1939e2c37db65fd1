"""`orderflow sandbox` as a newcomer uses it: it comes up, writes the environment to source,
the operator commands it suggests answer against it (the fleet, a rejected pair, the dead
letters, the cancelled order, the pause), and Ctrl-C stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def sourced(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


async def orderflow_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orderflow", *args, "--json",
        env={k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")} | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    answer: dict[str, Any] = json.loads(out)
    return answer


async def test_the_sandbox_stays_up_for_the_commands_it_suggests(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orderflow", "sandbox", cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    env_file = tmp_path / "sandbox.env"
    try:
        deadline = time.monotonic() + 90
        while not env_file.exists():
            assert process.returncode is None, "the sandbox exited"
            assert time.monotonic() < deadline, "the sandbox never came up"
            await asyncio.sleep(0.5)
        env = sourced(env_file)
        assert env["METRICS"].startswith("http://127.0.0.1:")

        rejected = await orderflow_json(env, "inspect", "PRACTICE-REJECTED-000000")
        smake = next(p for p in rejected["pairs"] if p["vendor"] == "smake")
        assert smake["status"] == "rejected"
        cancelled = await orderflow_json(env, "inspect", "PRACTICE-000010")
        assert {p["status"] for p in cancelled["pairs"]} == {"cancelled"}
        letters = await orderflow_json(env, "dlq", "list")
        assert len(letters["dead_letters"]) == 2
        fleet = await orderflow_json(env, "status")
        assert len(fleet["replicas"]) == 1 and "smake" in fleet["paused"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()[-3000:]
    assert not env_file.exists(), "the environment of a stopped sandbox is removed"
