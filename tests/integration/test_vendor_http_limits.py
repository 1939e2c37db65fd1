"""VendorHttp against a server that answers too much, over real loopback HTTP: an answer
larger than the limit is never held whole (declared, streamed or decompressed), and counts as
a transient `AnswerUnreadable` that still says the status; a small compressed answer is read."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from orderflow.adapters.errors import AnswerUnreadable
from orderflow.adapters.http import VendorHttp
from orderflow.contracts.events import Vendor

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


async def answer(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    if kind == "declared":
        return web.Response(body=b"x" * (LIMIT + 1))
    if kind == "streamed":  # no Content-Length: chunked, past the limit
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(40):
            await response.write(b"y" * 4_096)
        await response.write_eof()
        return response
    if kind == "bomb":  # 20 KB of gzip, 20 MB once inflated
        return web.Response(body=gzip.compress(b"\0" * 20_000_000), headers={"Content-Encoding": "gzip"})
    if kind == "corrupt":
        return web.Response(status=202, body=b"\x1f\x8b\x08\x00nonsense",
                            headers={"Content-Encoding": "gzip"})
    if kind == "brotli":
        return web.Response(body=b"\x0b\x02\x80{}\x03", headers={"Content-Encoding": "br"})
    if kind == "gzip":
        return web.Response(body=gzip.compress(b'{"ok": true}'), headers={"Content-Encoding": "gzip"})
    if kind == "deflate":
        return web.Response(body=zlib.compress(b'{"ok": 1}'), headers={"Content-Encoding": "deflate"})
    return web.Response(status=429, headers={"retry-after": "2"})


@pytest.fixture
async def http() -> AsyncIterator[VendorHttp]:
    app = web.Application()
    app.router.add_get("/{kind}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = VendorHttp(Vendor.SMAKE, f"http://127.0.0.1:{port}", timeout_s=10, max_connections=4,
                         max_answer_bytes=LIMIT)
    await session.start()
    try:
        yield session
    finally:
        await session.stop()
        await runner.cleanup()


@pytest.mark.parametrize(("kind", "status", "words"), [
    ("declared", 200, "declares 65537 bytes"),
    ("streamed", 200, "is longer than the 65536 bytes allowed"),
    ("bomb", 200, "decompresses to more than the 65536 bytes allowed"),
    ("corrupt", 202, "could not be decompressed"),
    ("brotli", 200, "an encoding we did not ask for: br"),
])
async def test_an_answer_that_cannot_be_read_safely_is_not(http: VendorHttp, kind: str, status: int,
                                                            words: str) -> None:
    with pytest.raises(AnswerUnreadable) as unreadable:
        await http.request("get_order", "GET", f"/{kind}")
    assert unreadable.value.retriable
    assert unreadable.value.status == status
    assert words in unreadable.value.message
    if kind in ("declared", "streamed", "bomb"):
        assert "ORDERFLOW_SMAKE__MAX_ANSWER_BYTES" in unreadable.value.message


@pytest.mark.parametrize(("kind", "body"), [("gzip", b'{"ok": true}'), ("deflate", b'{"ok": 1}')])
async def test_a_small_compressed_answer_is_read(http: VendorHttp, kind: str, body: bytes) -> None:
    answer = await http.request("get_order", "GET", f"/{kind}")
    assert answer.body == body


async def test_headers_of_an_answer_are_read_whatever_their_case(http: VendorHttp) -> None:
    answer = await http.request("get_order", "GET", "/throttled")
    assert answer.status == 429
    assert answer.headers.get("Retry-After") == "2"
