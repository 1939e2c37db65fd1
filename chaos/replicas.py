"""The replicas: `orderflow run` processes started, killed, stopped and probed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from pathlib import Path
from typing import IO

import aiohttp

from orderflow.sandbox.broker import free_port
from orderflow.sandbox.processes import Child, memory_mib, start_service


class Replicas:
    """`orderflow run` processes in numbered slots (each slot keeps its HTTP port)."""

    def __init__(self, env: dict[str, str], slots: int, work_dir: Path, grace_s: float, *,
                 static_membership: bool = False) -> None:
        self._env = env
        # Each slot a static member of its own (as a pod's name is kept across a container
        # restart in the pod): a replica started again in its slot takes its partitions back.
        self._static = static_membership
        self.env = dict(env)  # what the operator commands of the run are given too
        self._work_dir = work_dir
        self._grace_s = grace_s
        self.ports = [free_port() for _ in range(slots)]
        self.children: dict[int, Child] = {}
        self.every_child: list[Child] = []
        self.signalled: set[int] = set()  # pids the harness killed or terminated
        self.health_probes: Counter[str] = Counter()  # answers of running replicas' /healthz
        self._logs: dict[int, IO[bytes]] = {}
        self.lock = asyncio.Lock()  # one scaling step or kill at a time
        self.kills = 0
        self.kill_times: list[float] = []  # time.time() of each SIGKILL
        self.sigterm_exits: list[tuple[int | None, float]] = []
        self.peak_rss_mib = 0.0

    def start(self, slot: int) -> Child:
        log = self._logs.get(slot)
        if log is None:
            log = self._logs[slot] = (self._work_dir / f"replica-{slot}.log").open("ab")
        env = {**self._env, "ORDERFLOW_HTTP__PORT": str(self.ports[slot])}
        if self._static:
            env["ORDERFLOW_KAFKA__GROUP_INSTANCE_ID"] = f"replica-{slot}"
        child = start_service(env, log, name=f"replica-{slot}")
        self.children[slot] = child
        self.every_child.append(child)
        return child

    def running(self) -> list[int]:
        return sorted(slot for slot, child in self.children.items() if child.running)

    def note_memory(self) -> None:
        for child in self.children.values():
            peak = memory_mib(child.pid).get("peak_rss_mib")
            if peak is not None:
                self.peak_rss_mib = max(self.peak_rss_mib, peak)

    async def kill(self, slot: int) -> None:
        child = self.children[slot]
        self.note_memory()
        self.kill_times.append(time.time())
        self.signalled.add(child.pid)
        child.signal(signal.SIGKILL)
        await asyncio.to_thread(child.popen.wait)
        self.kills += 1

    async def terminate(self, slot: int) -> tuple[int | None, float]:
        """SIGTERM and wait: the exit code and the seconds it took."""
        child = self.children[slot]
        self.note_memory()
        started = time.monotonic()
        self.signalled.add(child.pid)
        child.signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.to_thread(child.popen.wait, self._grace_s + 60)
        except Exception:
            child.signal(signal.SIGKILL)
            await asyncio.to_thread(child.popen.wait)
            code = None
        took = time.monotonic() - started
        self.sigterm_exits.append((code, took))
        return code, took

    def exited_on_their_own(self) -> list[tuple[str, int | None]]:
        """Replicas that ended without the harness asking: a crash (must not happen)."""
        return [(c.name, c.popen.returncode) for c in self.every_child
                if c.popen.poll() is not None and c.pid not in self.signalled]

    async def probe_health(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """/healthz of every running replica, once a second: through kills, broker stalls and
        vendor outages the answer should stay 200 (a 503 means a loop stopped turning)."""
        while not stop.is_set():
            for slot in self.running():
                try:
                    async with session.get(f"http://127.0.0.1:{self.ports[slot]}/healthz",
                                           timeout=aiohttp.ClientTimeout(total=2)) as answer:
                        self.health_probes[str(answer.status)] += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.health_probes["no answer"] += 1  # starting, or just killed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def close_logs(self) -> None:
        for log in self._logs.values():
            log.close()


# ----------------------------------------------------------------------------- the run
