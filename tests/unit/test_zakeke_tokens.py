"""Zakeke S2S token cache: reuse until shortly before expiry, one request per token however
many callers wait (single flight), a bounded LRU of registration tokens, and dropping a
refused token without dropping its replacement. A fake token endpoint and a fake clock, no
I/O."""

from __future__ import annotations

import asyncio

import pytest

from orderflow.adapters.errors import VendorAuthFailed, VendorUnavailable
from orderflow.adapters.zakeke import GrantedToken, S2STokenCache, TokenCode
from orderflow.contracts.events import Vendor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTokenEndpoint:
    """Grants numbered tokens; can be made slow (a gate) or failing."""

    def __init__(self, expires_in: float | None = 3600) -> None:
        self.requests: list[TokenCode | None] = []
        self.expires_in = expires_in
        self.gate: asyncio.Event | None = None
        self.failure: Exception | None = None
        self.called = asyncio.Event()

    async def __call__(self, code: TokenCode | None) -> GrantedToken:
        self.requests.append(code)
        self.called.set()
        number = len(self.requests)
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return GrantedToken(f"token-{number}", self.expires_in)


ALICE = TokenCode("customercode", "alice")
BOB = TokenCode("customercode", "bob")
GUEST = TokenCode("visitorcode", "sess-1")


async def test_token_is_reused_until_shortly_before_it_expires() -> None:
    endpoint, clock = FakeTokenEndpoint(expires_in=100), FakeClock()
    cache = S2STokenCache(endpoint, max_codes=4, clock=clock)
    first = await cache.get(None)
    assert first.value == "token-1"
    clock.now += 89  # the margin is a tenth of a 100 s life
    assert (await cache.get(None)) is first
    clock.now += 1
    assert (await cache.get(None)).value == "token-2"
    assert endpoint.requests == [None, None]


async def test_plain_and_coded_tokens_are_separate() -> None:
    endpoint = FakeTokenEndpoint()
    cache = S2STokenCache(endpoint, max_codes=4, clock=FakeClock())
    read = await cache.get(None)
    alice = await cache.get(ALICE)
    guest = await cache.get(GUEST)
    assert len({read.value, alice.value, guest.value}) == 3
    assert (await cache.get(ALICE)) is alice
    assert endpoint.requests == [None, ALICE, GUEST]


async def test_concurrent_callers_share_one_token_request() -> None:
    endpoint = FakeTokenEndpoint()
    endpoint.gate = asyncio.Event()
    cache = S2STokenCache(endpoint, max_codes=4, clock=FakeClock())
    waiters = [asyncio.create_task(cache.get(ALICE)) for _ in range(20)]
    readers = [asyncio.create_task(cache.get(None)) for _ in range(20)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    alice = await asyncio.gather(*waiters)
    read = await asyncio.gather(*readers)
    assert {token.value for token in alice} == {"token-1"}
    assert {token.value for token in read} == {"token-2"}
    assert endpoint.requests == [ALICE, None]


async def test_a_failed_request_fails_every_waiter_and_the_next_call_asks_again() -> None:
    endpoint = FakeTokenEndpoint()
    endpoint.gate = asyncio.Event()
    endpoint.failure = VendorAuthFailed(Vendor.ZAKEKE, "token", "token refused", 401)
    cache = S2STokenCache(endpoint, max_codes=4, clock=FakeClock())
    waiters = [asyncio.create_task(cache.get(None)) for _ in range(5)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(result, VendorAuthFailed) for result in results)
    assert len(endpoint.requests) == 1
    endpoint.failure = None
    assert (await cache.get(None)).value == "token-2"


async def test_a_cancelled_caller_does_not_cancel_the_shared_request() -> None:
    endpoint = FakeTokenEndpoint()
    endpoint.gate = asyncio.Event()
    cache = S2STokenCache(endpoint, max_codes=4, clock=FakeClock())
    impatient = asyncio.create_task(cache.get(None))
    patient = asyncio.create_task(cache.get(None))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    endpoint.gate.set()
    assert (await patient).value == "token-1"
    assert len(endpoint.requests) == 1


async def test_failure_nobody_awaits_is_not_left_unretrieved() -> None:
    endpoint = FakeTokenEndpoint()
    endpoint.gate = asyncio.Event()
    endpoint.failure = VendorUnavailable(Vendor.ZAKEKE, "token", "down")
    cache = S2STokenCache(endpoint, max_codes=4, clock=FakeClock())
    only = asyncio.create_task(cache.get(None))
    await asyncio.sleep(0)
    only.cancel()
    endpoint.gate.set()
    await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await only
    endpoint.failure = None
    assert (await cache.get(None)).value == "token-2"


async def test_registration_tokens_are_an_lru_bounded_by_size() -> None:
    endpoint = FakeTokenEndpoint()
    cache = S2STokenCache(endpoint, max_codes=2, clock=FakeClock())
    await cache.get(ALICE)
    await cache.get(BOB)
    await cache.get(ALICE)  # ALICE is now the most recently used
    await cache.get(GUEST)  # evicts BOB
    assert cache.cached_codes == (ALICE, GUEST)
    await cache.get(None)  # the read token does not count against the bound
    assert cache.cached_codes == (ALICE, GUEST)
    await cache.get(BOB)
    assert cache.cached_codes == (GUEST, BOB)
    assert endpoint.requests == [ALICE, BOB, GUEST, None, BOB]


async def test_discard_drops_only_the_refused_token() -> None:
    endpoint = FakeTokenEndpoint()
    cache = S2STokenCache(endpoint, max_codes=4, clock=FakeClock())
    stale = await cache.get(ALICE)
    cache.discard(ALICE, stale)
    fresh = await cache.get(ALICE)
    assert fresh.value == "token-2"
    # A second caller that also held the stale token must not throw the fresh one away.
    cache.discard(ALICE, stale)
    assert (await cache.get(ALICE)) is fresh
    read = await cache.get(None)
    cache.discard(None, stale)
    assert (await cache.get(None)) is read
    cache.discard(None, read)
    assert (await cache.get(None)).value == "token-4"


async def test_close_cancels_requests_under_way_and_forgets_tokens() -> None:
    endpoint = FakeTokenEndpoint()
    cache = S2STokenCache(endpoint, max_codes=4, clock=FakeClock())
    await cache.get(ALICE)
    endpoint.gate = asyncio.Event()
    endpoint.called.clear()
    waiting = asyncio.create_task(cache.get(None))
    await endpoint.called.wait()  # the token request is under way
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert cache.cached_codes == ()
    endpoint.gate = None
    await cache.close()  # idempotent
    assert (await cache.get(ALICE)).value == "token-3"


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError):
        S2STokenCache(FakeTokenEndpoint(), max_codes=0)
