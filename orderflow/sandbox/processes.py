"""The sandbox's processes as they are deployed: `orderflow run` and the vendor simulators,
each a process of its own, configured only through their environment and command line.

The benchmark and the chaos harness drive these; what one process of theirs does to another
(SIGKILL, SIGTERM, a full core) is then what it would be in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp

from orderflow.config.settings import TopicSettings, env_name
from orderflow.sandbox.broker import TANSU, BrokerAbilities
from orderflow.sandbox.simulators import defaults, world
from orderflow.sandbox.simulators.defaults import VENDORS

CLK_TCK = os.sysconf("SC_CLK_TCK")


def sandbox_env(bootstrap_servers: str, topics: TopicSettings, urls: Mapping[str, str], *,
                http_port: int = 0, group_id: str | None = None,
                abilities: BrokerAbilities = TANSU) -> dict[str, str]:
    """The ORDERFLOW_* environment a deployment would set, pointed at the sandbox: a test
    broker of these `abilities` (the idempotent producer on where it has one, as in
    production; one replica), these topics, and the simulators of `urls` (vendor -> base
    URL; vendors not named are disabled). Session timeouts are short so a killed replica's
    partitions move within seconds."""
    env = {
        "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "ORDERFLOW_KAFKA__GROUP_ID": group_id or f"orderflow-{topics.orders_created}",
        "ORDERFLOW_KAFKA__ENABLE_IDEMPOTENCE": "true" if abilities.idempotence else "false",
        "ORDERFLOW_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "ORDERFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
        "ORDERFLOW_KAFKA__TRACKING_REPLICATION_FACTOR": "1",
        # Every topic, derived from the settings: a run whose control topic was left out
        # shared `orderflow.control` with every other, and one test's pause held the next's.
        **{env_name("topics", name): value for name, value in topics.model_dump().items()},
        "ORDERFLOW_HTTP__HOST": "127.0.0.1",
        "ORDERFLOW_HTTP__PORT": str(http_port),
        # Configured for the vendors as they really are (handles, read lag): world.py.
        **world.service_env(),
    }
    for vendor in VENDORS:
        prefix = f"ORDERFLOW_{vendor.upper()}__"
        env[prefix + "ENABLED"] = "true" if vendor in urls else "false"
        if vendor in urls:
            env[prefix + "BASE_URL"] = urls[vendor]
            env.update({prefix + name.upper(): value
                        for name, value in defaults.service_credentials()[vendor].items()})
    return env


# ----------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mib(pid: int | None) -> dict[str, float]:
    """Resident memory now (VmRSS) and its peak (VmHWM), in MiB (/proc/<pid>/status)."""
    if pid is None:
        return {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found["rss_mib" if key == "VmRSS" else "peak_rss_mib"] = int(rest.split()[0]) / 1024
    return found


# ----------------------------------------------------------------------------- children


@dataclass
class Child:
    """A process started by the sandbox; `pid` is the one to measure and signal."""

    name: str
    popen: subprocess.Popen[bytes]
    pid: int

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; returns the exit code."""
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()  # the simulators' pipe that announced their URLs
        return self.popen.returncode


def start_simulators(options: Sequence[str], log: IO[bytes], vendors: Sequence[str] = VENDORS
                     ) -> tuple[Child, dict[str, str]]:
    """`python -m orderflow.sandbox.simulators` with `options` (its command line), in a
    process of its own; returns it and vendor -> base URL once it listens."""
    which = "all" if len(vendors) > 1 else vendors[0]
    command = [sys.executable, "-m", "orderflow.sandbox.simulators", which, *options]
    popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    assert popen.stdout is not None
    line = popen.stdout.readline()  # one JSON line once listening: vendor -> base URL
    if not line:
        popen.wait()
        raise RuntimeError(f"the simulators exited with {popen.returncode}; see {log.name}")
    urls: dict[str, str] = json.loads(line)
    return Child("simulators", popen, popen.pid), {v: urls[v] for v in vendors}


def start_service(env: Mapping[str, str], log: IO[bytes], name: str = "service",
                  wrapper: Sequence[str] = ()) -> Child:
    """`orderflow run` with `env` as its ORDERFLOW_* settings (others inherited, except
    stray ORDERFLOW_* of the caller). With a `wrapper` (a profiler), the child's pid is the
    service's own, found below the wrapper."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    command = [*wrapper, sys.executable, "-m", "orderflow", "run"]
    popen = subprocess.Popen(command, env={**base, **env}, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
    pid = popen.pid
    if wrapper:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            inner = [p for p in descendants(popen.pid) if "orderflow" in cmdline(p)]
            if inner:
                pid = inner[-1]
                break
            time.sleep(0.05)
    return Child(name, popen, pid)


async def wait_ready(session: aiohttp.ClientSession, port: int, service: Child,
                     timeout_s: float = 60.0) -> None:
    """Until the service's /readyz answers 200; raises if it exits or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not service.running:
            raise RuntimeError(f"{service.name} exited with {service.popen.returncode}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                if answer.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{service.name} was not ready within {timeout_s}s")


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, parents before children."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.append(int(child))
                found.extend(descendants(int(child)))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
