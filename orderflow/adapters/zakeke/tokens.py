"""Zakeke S2S tokens, cached: one for reads, one per customer or visitor code for
registrations, each reused until shortly before it expires."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from orderflow.adapters.zakeke.answers import GrantedToken, token_lifetime
from orderflow.adapters.zakeke.request import TokenCode


@dataclass(frozen=True, slots=True)
class CachedToken:
    value: str = field(repr=False)
    expires_at: float


TokenFetcher = Callable[[TokenCode | None], Awaitable[GrantedToken]]


class S2STokenCache:
    """Zakeke S2S tokens: one plain token (no code) for reads, and registration tokens per
    customer or visitor code in an LRU bounded by `max_codes`. Each is reused until shortly
    before it expires. Callers that need a token nobody holds yet share one request for it
    (single flight): a burst of polls after expiry makes one token call, not a stampede. A
    caller that gives up (cancellation) does not cancel the request the others wait on."""

    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        max_codes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_codes < 1:
            raise ValueError("max_codes must be at least 1")
        self._fetch = fetch
        self._max_codes = max_codes
        self._clock = clock
        self._read_token: CachedToken | None = None
        self._by_code: OrderedDict[TokenCode, CachedToken] = OrderedDict()
        self._inflight: dict[TokenCode | None, asyncio.Task[CachedToken]] = {}

    @property
    def cached_codes(self) -> tuple[TokenCode, ...]:
        """Codes holding a token, least recently used first."""
        return tuple(self._by_code)

    async def get(self, code: TokenCode | None) -> CachedToken:
        cached = self._cached(code)
        if cached is not None:
            return cached
        task = self._inflight.get(code)
        if task is None:
            task = asyncio.create_task(self._fetch_and_keep(code), name=f"zakeke-token-{code}")
            self._inflight[code] = task
            task.add_done_callback(partial(self._fetch_done, code))
        return await asyncio.shield(task)

    def discard(self, code: TokenCode | None, token: CachedToken) -> None:
        """Forget `token` (Zakeke refused it), unless a newer one already replaced it."""
        if code is None:
            if self._read_token is token:
                self._read_token = None
        elif self._by_code.get(code) is token:
            del self._by_code[code]

    async def close(self) -> None:
        """Cancel token requests under way and forget every token."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._read_token = None
        self._by_code.clear()

    def _cached(self, code: TokenCode | None) -> CachedToken | None:
        token = self._read_token if code is None else self._by_code.get(code)
        if token is None:
            return None
        if self._clock() >= token.expires_at:
            self.discard(code, token)
            return None
        if code is not None:
            self._by_code.move_to_end(code)
        return token

    async def _fetch_and_keep(self, code: TokenCode | None) -> CachedToken:
        # Lifetime counts from before the request left: the answer's `expires_in` started
        # running at Zakeke somewhere in between.
        requested_at = self._clock()
        granted = await self._fetch(code)
        token = CachedToken(granted.access_token, requested_at + token_lifetime(granted.expires_in))
        if code is None:
            self._read_token = token
        else:
            self._by_code[code] = token
            self._by_code.move_to_end(code)
            while len(self._by_code) > self._max_codes:
                self._by_code.popitem(last=False)
        return token

    def _fetch_done(self, code: TokenCode | None, task: asyncio.Task[CachedToken]) -> None:
        if self._inflight.get(code) is task:
            del self._inflight[code]
        if not task.cancelled():
            # Mark the failure as seen: every waiter may have been cancelled meanwhile.
            task.exception()
