"""A vendor's budget is the cluster's: two replicas of one group, each owning half of the
input partitions, each take half of ORDERFLOW_SMAKE__MAX_CONCURRENCY and __RATE_LIMIT_PER_S,
and one replica alone takes all of it again once the other leaves."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from conftest import PARTITIONS, service_env, settings_from

from orderflow.consumer.app import Application
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

pytestmark = [pytest.mark.integration]


async def budget(app: Application) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        text = await (await http.get(f"http://127.0.0.1:{app.ops.port}/metrics")).text()
    found = {}
    for line in text.splitlines():
        if line.startswith('orderflow_vendor_budget{') and 'vendor="smake"' in line:
            kind = line.split('kind="')[1].split('"')[0]
            found[kind] = float(line.rsplit(" ", 1)[1])
    return found


async def owned(app: Application) -> int:
    return len(app.partitions.owned())


async def test_two_replicas_share_the_budget_and_one_takes_it_whole_again(broker, topics, monkeypatch):
    async with SimulatorServer(SmakeSimulator(**world.smake_options())) as smake:
        env = service_env(broker, topics, smake=smake.base_url) | {
            "ORDERFLOW_SMAKE__MAX_CONCURRENCY": "8", "ORDERFLOW_SMAKE__RATE_LIMIT_PER_S": "20"}
        first = Application(settings_from(env, monkeypatch))
        second = Application(settings_from(env, monkeypatch))
        await first.start()
        try:
            for _ in range(100):
                if await owned(first) == PARTITIONS:
                    break
                await asyncio.sleep(0.2)
            assert await budget(first) == {"concurrency": 8.0, "rate_per_s": 20.0}
            await second.start()
            try:
                for _ in range(150):
                    if await owned(first) + await owned(second) == PARTITIONS and \
                            await owned(second) > 0 and first.readiness()[0]:
                        break
                    await asyncio.sleep(0.2)
                shares = [await budget(app) for app in (first, second)]
                assert sum(s["concurrency"] for s in shares) == 8.0, shares
                assert sum(s["rate_per_s"] for s in shares) == pytest.approx(20.0), shares
            finally:
                await second.stop()
            for _ in range(150):
                if await owned(first) == PARTITIONS:
                    break
                await asyncio.sleep(0.2)
            assert await budget(first) == {"concurrency": 8.0, "rate_per_s": 20.0}
        finally:
            await first.stop()
