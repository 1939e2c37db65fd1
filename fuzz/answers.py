"""Hostile vendor answers: every adapter's submit and poll against a server that answers
each request with a generated status, headers and body, over real HTTP.

Bodies are shaped like the vendor's answer to the path asked (a Zakeke order with items, a
Smake order list, a token, ...) and then broken at random, or are not JSON at all: wrong
types and missing fields, lone surrogates, invalid UTF-8, deep nesting, huge integers,
NaN, megabyte texts, bodies past the size limit, gzip bombs and corrupt gzip, unknown
encodings. Headers: Retry-After in every form (lowercase too), X-Identifier and Location
with unsafe ids. Statuses: the documented ones and a few that are not.

Every call must end as an Observation or a VendorError (mapped): anything else escaping is
a crash. Every Observation must then go through the engine's next step (the status and
print-files events, serialized as they are published, and the job's tracking record) and
stay within bounds.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import time
import traceback
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from orderflow.adapters.errors import VendorError
from orderflow.adapters.outcomes import Observation, PairState, VendorAdapter
from orderflow.adapters.reevoo import ReevooAdapter
from orderflow.adapters.smake import SmakeAdapter
from orderflow.adapters.zakeke import ZakekeAdapter
from orderflow.config.settings import PollSettings, ReevooSettings, SmakeSettings, ZakekeSettings
from orderflow.consumer import transitions
from orderflow.consumer.intake import TRACKING_RECORD_HEADROOM
from orderflow.consumer.jobs import Job
from orderflow.consumer.jobs import Phase as JobPhase
from orderflow.consumer.tracking_record import encode_job
from orderflow.contracts.events import Order, OrderCreated, Vendor, VendorStatus
from orderflow.sandbox.samples import sample_order_event

MAX_ANSWER_BYTES = 64 * 1024  # the adapters' limit in this run: "past the limit" is cheap
MAX_EVENT_BYTES = 64 * 1024   # what one published event may weigh at most

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    kind: str


# ----------------------------------------------------------------------------- bodies


def _json_values() -> st.SearchStrategy[Any]:
    scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
               | st.text(max_size=30))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def hypothesis_bodies(count: int) -> list[Any]:
    found: list[Any] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(_json_values())
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


_HOSTILE_LEAVES: list[Any] = [None, "", ".", "..", "\ud800", "x" * 200_000, 10**30, -1, 1.5,
                              True, [], {}, {"a": []}, "READY", "completed", "failed",
                              "🙂", "\x00", "9" * 50]


def _break(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """Replace one leaf (or drop one key) somewhere in `value`."""
    if isinstance(value, dict) and value and depth < 6:
        key = rng.choice(list(value))
        copy = dict(value)
        if rng.random() < 0.2:
            del copy[key]
        else:
            copy[key] = _break(rng, copy[key], depth + 1)
        return copy
    if isinstance(value, list) and value and depth < 6:
        items = list(value)
        at = rng.randrange(len(items))
        items[at] = _break(rng, items[at], depth + 1)
        return items
    return rng.choice(_HOSTILE_LEAVES)


def _shaped(path: str, method: str, rng: random.Random, order: Order) -> Any:
    """A plausible answer for the path, before breaking."""
    lines = [line for line in order.lines if line.customization is not None]
    if path.endswith("/token"):
        return {"access_token": f"tok-{rng.randrange(10**6)}", "token_type": "Bearer",
                "expires_in": rng.choice([3600, 0, -5, "60", None])}
    if "/v2/order" in path and method == "GET":
        return {"id": rng.choice([rng.randrange(10**6), str(uuid.uuid4()), None]),
                "code": order.order_id,
                "items": [{"code": line.line_id,
                           "design": getattr(line.customization, "design_id", None),
                           "designModificationID": None,
                           "printFilesStatus": rng.choice(["READY", "INPROCESS", "ready", "FAILED"]),
                           "printingFilesZip": rng.choice([None, "https://files.test/a.zip"]),
                           "printingFiles": [{"type": "PDF", "url": "https://files.test/a.pdf"}]}
                          for line in lines]}
    if "/v3/designs/" in path:
        return {"designUnitPrice": rng.choice([4.0, "4.00", 4, -1, "NaN", "1e999"])}
    if "/outputfiles/zip" in path:
        return {"url": "https://files.test/print.zip"}
    if path.endswith("/orders") and method == "GET":
        return {"data": [_smake_order(rng, order) for _ in range(rng.randint(0, 3))],
                "links": {"next": rng.choice([None, None, "https://smake.test/orders?page=2"])},
                "meta": {"current_page": 1, "per_page": 100}}
    if "/orders/" in path and method == "GET":
        return _smake_order(rng, order)
    if "customer_order" in path:
        return {"status": 202, "id": str(uuid.uuid4()), "message": "Customer order accepted"}
    return {"message": "ok"}


def _smake_order(rng: random.Random, order: Order) -> dict[str, Any]:
    state = rng.choice(["draft", "checking", "preparing", "prepared", "completed", "failed",
                        "cancelled", "shipped", "", None])
    return {"id": rng.choice([rng.randrange(1, 10**6), "137", "..", "a/b", 0]),
            "external_identifier": rng.choice([order.order_id, order.order_id + "0", None]),
            "state": state,
            "failure_message": rng.choice([None, "out of stock", "x" * 300_000, "\ud800"]),
            "shipments": [{"tracking_number": rng.choice([None, "TRK1", 12345, "\ud800", ""])}]}


def _encode(value: Any, rng: random.Random) -> bytes:
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes broken UTF-8


def make_answer(rng: random.Random, path: str, method: str, order: Order,
                pool: list[Any]) -> Answer:
    status = rng.choice([200] * 8 + [201, 202, 204, 301, 400, 401, 403, 404, 409, 422, 429,
                                     500, 502, 503, 504, 418, 299])
    headers: dict[str, str] = {"Content-Type": rng.choice(["application/json", "text/html", ""])}
    roll = rng.random()
    kind = "shaped"
    body: bytes
    if roll < 0.35:
        body = _encode(_shaped(path, method, rng, order), rng)
    elif roll < 0.6:
        kind = "broken_shape"
        body = _encode(_break(rng, _shaped(path, method, rng, order)), rng)
    elif roll < 0.7:
        kind = "hypothesis_json"
        body = _encode(rng.choice(pool), rng)
    else:
        kind, body = rng.choice(_HOSTILE_BODIES)(rng)
    if kind == "gzip_bomb" or kind == "gzip_small" or kind == "gzip_corrupt":
        headers["Content-Encoding"] = "gzip"
    elif kind == "brotli_claimed":
        headers["Content-Encoding"] = "br"
    if rng.random() < 0.3:
        name = rng.choice(["Retry-After", "retry-after", "RETRY-AFTER"])
        headers[name] = rng.choice(["1", "0", "-5", "1e9", "NaN", "inf", "2.5", "garbage", "",
                                    "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"])
    if rng.random() < 0.3:
        headers[rng.choice(["X-Identifier", "x-identifier"])] = rng.choice(
            ["137", "..", ".", "", "x" * 2_000, "a b", "%2e%2e", "12/34"])
    if rng.random() < 0.2:
        headers["Location"] = rng.choice(["/v2/apps/1/orders/99", "/jobs/1", "/orders/..",
                                          "https://smake.test/orders/", "::::"])
    if status in (204, 304):
        body = b""
    return Answer(status, headers, body, kind)


def _bomb(rng: random.Random) -> tuple[str, bytes]:
    return "gzip_bomb", gzip.compress(b"\0" * (20 * 1024 * 1024), compresslevel=9)


_HOSTILE_BODIES: list[Callable[[random.Random], tuple[str, bytes]]] = [
    lambda rng: ("empty", b""),
    lambda rng: ("not_json", b"<html>Bad Gateway</html>"),
    lambda rng: ("invalid_utf8", b'{"message": "\xff\xfe"}'),
    lambda rng: ("lone_surrogate", b'{"message": "\\ud800", "state": "failed", "id": 1}'),
    lambda rng: ("deep_nesting", b"[" * 60_000 + b"]" * 60_000),
    lambda rng: ("huge_integer", b'{"id": ' + b"9" * 6_000 + b"}"),
    lambda rng: ("nan", b'{"designUnitPrice": NaN, "expires_in": Infinity}'),
    lambda rng: ("over_limit", b'{"message": "' + b"x" * (MAX_ANSWER_BYTES + rng.randint(1, 50_000)) + b'"}'),
    lambda rng: ("just_under_limit", b'{"message": "' + b"y" * (MAX_ANSWER_BYTES - 20) + b'"}'),
    _bomb,
    lambda rng: ("gzip_small", gzip.compress(b'{"access_token": "t", "expires_in": 60}')),
    lambda rng: ("gzip_corrupt", b"\x1f\x8b\x08\x00garbage" + rng.randbytes(50)),
    lambda rng: ("brotli_claimed", b"\x0b\x02\x80{}\x03"),
    lambda rng: ("random_bytes", rng.randbytes(rng.randint(1, 3_000))),
    lambda rng: ("huge_text", json.dumps({"message": "m" * 60_000, "failure_message": "f" * 2_000,
                                          "state": "failed", "id": 7}).encode()),
]


# ----------------------------------------------------------------------------- the server


class AnsweringServer:
    """Answers every request with `make_answer` for the order of the current case."""

    def __init__(self, rng: random.Random, pool: list[Any]) -> None:
        self._rng = rng
        self._pool = pool
        self.order: Order | None = None
        self.kinds: Counter[str] = Counter()
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        assert self.order is not None
        answer = make_answer(self._rng, request.path, request.method, self.order, self._pool)
        self.requests += 1
        self.kinds[answer.kind] += 1
        response = web.Response(status=answer.status, body=answer.body)
        for name, value in answer.headers.items():
            response.headers[name] = value
        return response


# ----------------------------------------------------------------------------- the run


@dataclass
class AnswersFuzzReport:
    calls: Counter[str] = field(default_factory=Counter)        # per vendor
    observations: Counter[str] = field(default_factory=Counter)
    mapped_errors: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    batch_calls: int = 0  # Smake poll_many calls that answered
    body_kinds: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.crashes

    def render(self) -> str:
        lines = [f"answers fuzz: {sum(self.calls.values())} adapter calls, {self.requests} answers, "
                 f"{len(self.crashes)} crashes, {self.seconds:.1f} s"]
        if self.batch_calls:
            lines.append(f"  of the Smake calls, {self.batch_calls} batch reads (poll_many) answered")
        for vendor in sorted(self.calls):
            lines.append(f"  {vendor:<7} {self.calls[vendor]:>6} calls: "
                         f"{self.observations[vendor]} observations, "
                         f"{self.mapped_errors[vendor]} mapped errors")
        lines.append("  answer bodies: " + ", ".join(f"{k} {n}" for k, n in sorted(self.body_kinds.items())))
        lines.extend(f"  CRASH: {crash}" for crash in self.crashes[:20])
        return "\n".join(lines)


def _adapters(url: str) -> dict[Vendor, VendorAdapter]:
    common = {"request_timeout_s": 5.0, "max_answer_bytes": MAX_ANSWER_BYTES}
    return {
        Vendor.ZAKEKE: ZakekeAdapter(ZakekeSettings(base_url=url, client_id="z",
                                                    client_secret=SecretStr("s"), **common)),
        Vendor.SMAKE: SmakeAdapter(SmakeSettings(base_url=url + "/v2/apps/1",
                                                 api_key=SecretStr("k"), **common)),
        Vendor.REEVOO: ReevooAdapter(ReevooSettings(base_url=url, api_key=SecretStr("k"),
                                                    api_secret=SecretStr("s"), trkref="TRK",
                                                    **common)),
    }


def check_next_step(vendor: Vendor, order: Order, state: PairState, submit: bool,
                    observation: Observation) -> None:
    """The engine's next step with this observation: events serialized as published, the
    job's record written. Raises AssertionError (or whatever escapes) on a problem."""
    job = Job(order_id=order.order_id, vendor=vendor, partition=0, source_event_id="fuzz",
              order=order, phase=JobPhase.SUBMIT if submit else JobPhase.POLL,
              status=None if submit else VendorStatus.SUBMITTED,
              vendor_order_ref=state.vendor_order_ref, vendor_state=state.vendor_state,
              created_at=time.time(), due_at=time.time())
    step = transitions.observed(job, observation, time.time(), PollSettings(), random.Random(0))
    for event in step.events:
        encoded = event.model_dump_json().encode("utf-8")
        assert len(encoded) <= MAX_EVENT_BYTES, f"{event.event_type} of {len(encoded)} bytes"
    before = len(encode_job(job))
    after = len(encode_job(step.job))
    assert after - before <= TRACKING_RECORD_HEADROOM, f"tracking record grew by {after - before}"


async def run_answers_fuzz(calls_per_vendor: int, seed: int = 1, *, say: Say = print
                           ) -> AnswersFuzzReport:
    report = AnswersFuzzReport()
    started = time.monotonic()
    rng = random.Random(seed)
    pool = hypothesis_bodies(200)
    events = [sample_order_event(i, rng, shape="mixed", prefix=f"AF{seed}") for i in range(20)]
    orders = [OrderCreated.model_validate(event).order for event in events]
    server = AnsweringServer(rng, pool)
    await server.start()
    say(f"answering {calls_per_vendor} calls per vendor from {server.url} ...")
    try:
        for vendor in (Vendor.ZAKEKE, Vendor.SMAKE, Vendor.REEVOO):
            adapter: VendorAdapter | None = None
            for n in range(calls_per_vendor):
                if n % 50 == 0:  # fresh token caches and sessions now and then
                    if adapter is not None:
                        await adapter.stop()
                    adapter = _adapters(server.url)[vendor]
                    await adapter.start()
                assert adapter is not None
                order = rng.choice(orders)
                server.order = order
                submit = rng.random() < 0.5
                state = PairState(rng.choice([None, "137", "..", "x" * 300]),
                                  rng.choice([None, "checking", "INPROCESS"]))
                report.calls[str(vendor)] += 1
                batch = isinstance(adapter, SmakeAdapter) and not submit and rng.random() < 0.4
                try:
                    if submit:
                        observation = await adapter.submit(order, state)
                    elif batch:
                        assert isinstance(adapter, SmakeAdapter)
                        refs = rng.sample(["137", "1", "13", "..", "x" * 300, "a b", "2", "99"],
                                          rng.randint(1, 5))
                        found = await adapter.poll_many(refs)
                        report.batch_calls += 1
                        assert set(found) <= set(refs), f"answers for ids not asked: {set(found) - set(refs)}"
                        for ref, seen in found.items():
                            check_next_step(vendor, order, PairState(ref, state.vendor_state),
                                            False, seen)
                        continue
                    else:
                        # An accepted pair keeps only what polls read (None for Smake).
                        view = adapter.polling_view(order) if rng.random() < 0.5 else order
                        observation = await adapter.poll(view, state)
                except VendorError:
                    report.mapped_errors[str(vendor)] += 1
                    continue
                except Exception as exc:
                    what = "submit" if submit else "poll_many" if batch else "poll"
                    report.crashes.append(f"{vendor} {what}: "
                                          f"{type(exc).__name__}: {exc!s:.200} | "
                                          + traceback.format_exc(limit=-3).replace("\n", " ")[:600])
                    continue
                report.observations[str(vendor)] += 1
                try:
                    check_next_step(vendor, order, state, submit, observation)
                except Exception as exc:
                    report.crashes.append(f"{vendor} next step after {observation!r:.200}: "
                                          f"{type(exc).__name__}: {exc!s:.300}")
            if adapter is not None:
                await adapter.stop()
    finally:
        await server.stop()
    report.requests = server.requests
    report.body_kinds = server.kinds
    report.seconds = time.monotonic() - started
    _ = zlib  # bodies are compressed with gzip above; the adapters decompress with zlib
    return report


def main_sync(calls_per_vendor: int, seed: int) -> AnswersFuzzReport:
    return asyncio.run(run_answers_fuzz(calls_per_vendor, seed))
