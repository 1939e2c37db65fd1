"""Smake's webhooks, as its other pages describe them (vendor-docs README, "More Smake facts"),
for the simulator: `order.prepared`, `order.completed`, `order.failed`, `order.cancelled` and
`shipment.prepared`, each a POST of `{"event": ..., "data": <the resource>}` signed in
`X-Signature` (hex HMAC-SHA256 of the raw body keyed by the webhook's token), acknowledged
by any 2xx within 10 s, otherwise delivered again (here: up to `max_attempts`, `retry_s`
apart, where Smake retries up to 50 times over 48 hours).

Harder than the pages promise, as deliveries are in life: a share arrives twice
(`repeat_rate`), each is held a random while up to `max_delay_s` (so they arrive out of
order), and a share of forgeries (`forged_rate`) is sent beside the real ones: signed with a
wrong token, claiming a state the order is not in. `stats` counts what happened; a receiver
that acknowledges a forgery shows in `stats.forged_acknowledged`.

Not documented, so chosen here: the envelope's member names (`event`, `data`) and the
`shipment.prepared` resource (the shipment, with `order` holding the order id).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ORDER_EVENTS = {"prepared": "order.prepared", "completed": "order.completed",
                "failed": "order.failed", "cancelled": "order.cancelled"}
SHIPMENT_PREPARED = "shipment.prepared"


@dataclass
class WebhookStats:
    scheduled: int = 0
    deliveries: int = 0      # POSTs of real events, first tries and repeats
    acknowledged: int = 0    # real deliveries answered 2xx
    refused: int = 0         # real deliveries answered otherwise (tried again)
    given_up: int = 0
    repeats: int = 0
    forged: int = 0
    forged_acknowledged: int = 0  # must stay 0
    by_event: dict[str, int] = field(default_factory=dict)


def signature(token: str, body: bytes) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, clock: Callable[[], float], rng: random.Random) -> None:
        self.url: str | None = None
        self.token: str = ""
        self.repeat_rate = 0.0
        self.forged_rate = 0.0
        self.max_delay_s = 0.0
        self.retry_s = 1.0
        self.max_attempts = 5
        self.stats = WebhookStats()
        self._clock = clock
        self._rng = rng
        self._due: list[tuple[float, int, int, str]] = []  # (clock, seq, order id, event)
        self._seq = 0
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def configure(self, *, url: str | None, token: str = "", repeat_rate: float = 0.0,
                  forged_rate: float = 0.0, max_delay_s: float = 0.0, retry_s: float = 1.0,
                  max_attempts: int = 5) -> None:
        self.url, self.token = url, token
        self.repeat_rate, self.forged_rate = repeat_rate, forged_rate
        self.max_delay_s, self.retry_s, self.max_attempts = max_delay_s, retry_s, max_attempts

    def schedule(self, at: float, order_id: int, event: str) -> None:
        self._seq += 1
        heapq.heappush(self._due, (at, self._seq, order_id, event))
        self.stats.scheduled += 1
        self._wake.set()

    def clear(self) -> None:
        self._due.clear()

    async def start(self, render: Callable[[int, str, float], dict[str, Any] | None]) -> None:
        self._render = render
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._task = asyncio.create_task(self._run(), name="smake-webhooks")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            while self._due and self._due[0][0] <= now:
                _, _, order_id, event = heapq.heappop(self._due)
                if self.url is None:
                    continue
                resource = self._render(order_id, event, now)
                if resource is None:
                    continue
                self._send_later(event, resource)
            wait = 0.2 if not self._due else min(0.2, max(0.0, self._due[0][0] - now))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def _send_later(self, event: str, resource: dict[str, Any]) -> None:
        body = json.dumps({"event": event, "data": resource}, separators=(",", ":")).encode()
        self._spawn(self._deliver(event, body, self._delay()))
        if self._rng.random() < self.repeat_rate:
            self.stats.repeats += 1
            self._spawn(self._deliver(event, body, self._delay() + self.max_delay_s))
        if self._rng.random() < self.forged_rate:
            self._spawn(self._forge(event, resource))

    def _delay(self) -> float:
        return self._rng.uniform(0.0, self.max_delay_s) if self.max_delay_s > 0 else 0.0

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _post(self, body: bytes, sig: str) -> int | None:
        assert self._session is not None and self.url is not None
        try:
            async with self._session.post(self.url, data=body, headers={
                    "Content-Type": "application/json", "X-Signature": sig}) as answer:
                await answer.read()
                return answer.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _deliver(self, event: str, body: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(self.retry_s)
            self.stats.deliveries += 1
            status = await self._post(body, signature(self.token, body))
            if status is not None and 200 <= status < 300:
                self.stats.acknowledged += 1
                self.stats.by_event[event] = self.stats.by_event.get(event, 0) + 1
                return
            self.stats.refused += 1
        self.stats.given_up += 1

    async def _forge(self, event: str, resource: dict[str, Any]) -> None:
        """A delivery that did not come from Smake: claims completion, signed wrongly."""
        await asyncio.sleep(self._delay())
        forged = {**resource, "state": "completed"} if "state" in resource else resource
        body = json.dumps({"event": "order.completed", "data": forged},
                          separators=(",", ":")).encode()
        self.stats.forged += 1
        status = await self._post(body, signature(self.token + "-forged", body))
        if status is not None and 200 <= status < 300:
            self.stats.forged_acknowledged += 1
