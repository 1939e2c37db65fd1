"""Hostile webhook deliveries to a running service's `POST /webhooks/smake`, over real HTTP.

The service runs on the embedded broker with the Smake simulator and a few pairs waiting at
Smake, polling stretched far past the run. Deliveries come in three phases:

1. forged: hypothesis-generated JSON and random bytes, unsigned, signed with a wrong token,
   or a genuine delivery's body mutated (a bit flipped, a byte inserted or cut) under its
   original signature, plus oversized bodies. Every one must be refused (401, or 413 for the
   oversized) and Smake must see no request at all meanwhile.
2. signed junk: the same generated bodies signed with the right token. Each must get a 2xx
   or a 400 (never a 5xx), and still no request reaches Smake: none names a waiting order.
3. signed genuine: one delivery per waiting order, some repeated. Smake must then be asked
   about them (the owner polls now), and the service must still answer /healthz 200.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from orderflow.config.settings import TopicSettings, load_settings, overrides_from
from orderflow.consumer.app import Application
from orderflow.sandbox.broker import SandboxBroker, chosen_broker, create_topics, prefixed_topics
from orderflow.sandbox.processes import sandbox_env
from orderflow.sandbox.samples import encode, sample_orders
from orderflow.sandbox.simulators import world
from orderflow.sandbox.simulators.base import SimulatorServer
from orderflow.sandbox.simulators.smake import SmakeSimulator

TOKEN = "fuzz-webhook-token"


@dataclass
class WebhooksFuzzReport:
    deliveries: Counter[str] = field(default_factory=Counter)   # phase -> count
    answers: Counter[str] = field(default_factory=Counter)      # "phase status" -> count
    smake_requests_while_forged: int = 0
    smake_requests_while_junk: int = 0
    smake_reads_after_genuine: int = 0
    healthy_at_end: bool = False
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.violations

    def render(self) -> str:
        lines = [f"webhooks fuzz: {sum(self.deliveries.values())} deliveries, "
                 f"{len(self.violations)} violations, {self.seconds:.1f} s"]
        lines.append("  answers: " + ", ".join(f"{k}: {n}" for k, n in sorted(self.answers.items())))
        lines.append(f"  Smake requests while forged: {self.smake_requests_while_forged}, while "
                     f"signed junk: {self.smake_requests_while_junk}; reads after genuine: "
                     f"{self.smake_reads_after_genuine}; /healthz 200 at the end: {self.healthy_at_end}")
        lines.extend(f"  VIOLATION: {v}" for v in self.violations[:20])
        return "\n".join(lines)


def sign(body: bytes, token: str = TOKEN) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["event", "type", "data", "resource", "order", "shipment", "id",
                         "order_id", "external_identifier", "state", "payload"]) | st.text(max_size=8),
        inner, max_size=6),
    max_leaves=25)


def generated_bodies(count: int, seed: int) -> list[bytes]:
    bodies: list[bytes] = []
    rng = random.Random(seed)

    @settings(max_examples=count, database=None, derandomize=True, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(value=json_values)
    def collect(value: object) -> None:
        bodies.append(json.dumps(value).encode())

    collect()
    while len(bodies) < count:
        bodies.append(rng.randbytes(rng.randint(0, 300)))
    for i in range(0, len(bodies), 7):
        bodies[i] = rng.randbytes(rng.randint(0, 200))  # not JSON at all
    return bodies


def mutate(body: bytes, rng: random.Random) -> bytes:
    if not body:
        return b"x"
    i = rng.randrange(len(body))
    match rng.randrange(3):
        case 0:
            return body[:i] + bytes([body[i] ^ (1 << rng.randrange(8))]) + body[i + 1:]
        case 1:
            return body[:i] + bytes([rng.randrange(256)]) + body[i:]
        case _:
            return body[:i] + body[i + 1:]


async def run_webhooks_fuzz(deliveries: int, seed: int = 1,
                            broker: SandboxBroker | None = None) -> WebhooksFuzzReport:
    if broker is None:
        with chosen_broker() as own:
            return await run_webhooks_fuzz(deliveries, seed, own)
    report = WebhooksFuzzReport()
    started = time.monotonic()
    rng = random.Random(seed)
    bodies = generated_bodies(deliveries, seed)
    topics = prefixed_topics(f"fw{seed}-{random.randrange(10**6)}")
    await create_topics(broker.bootstrap_servers, [
        (topics.orders_created, 2, None), (topics.status, 2, None),
        (topics.print_files_ready, 2, None), (topics.dead_letter, 1, None)])
    # Ids no generated body names by chance: a signed junk delivery naming a waiting order
    # would rightly make its owner look.
    simulator = SmakeSimulator(seconds_per_state=3_600, first_id=7_340_001, **world.smake_options())
    async with SimulatorServer(simulator) as smake:
        env = sandbox_env(broker.bootstrap_servers, topics, {"smake": smake.base_url},
                          abilities=broker.abilities) | {
            "ORDERFLOW_SMAKE__WEBHOOK_TOKEN": TOKEN, "ORDERFLOW_LOG__LEVEL": "CRITICAL",
            "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "3600", "ORDERFLOW_POLL__MAX_INTERVAL_S": "3600"}
        app = Application(load_settings(env, **overrides_from(env)))
        await app.start()
        try:
            await _phases(app, simulator, broker.bootstrap_servers, topics, bodies, rng, report)
        finally:
            await app.stop()
    report.seconds = time.monotonic() - started
    return report


async def _phases(app: Application, simulator: SmakeSimulator, bootstrap: str,
                  topics: TopicSettings, bodies: list[bytes], rng: random.Random,
                  report: WebhooksFuzzReport) -> None:
    from aiokafka import AIOKafkaProducer

    events = sample_orders(5, seed=rng.randrange(1000), prefix="FW", shape="smake")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for event in events:
        key, value = encode(event)
        await producer.send_and_wait(topics.orders_created, value, key=key)
    await producer.stop()
    for _ in range(300):  # created at Smake within a minute
        if len(simulator.orders) >= len(events):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # the pairs recorded as waiting
    url = f"http://127.0.0.1:{app.ops.port}/webhooks/smake"
    genuine = [json.dumps({"event": "order.prepared", "data": {
        "id": order.id, "external_identifier": order.external_identifier, "state": "prepared"}}
    ).encode() for order in simulator.orders.values()]

    async with aiohttp.ClientSession() as http:
        async def post(phase: str, body: bytes, headers: dict[str, str]) -> int:
            report.deliveries[phase] += 1
            # A large body goes as a stream (aiohttp warns against large raw bytes).
            data = io.BytesIO(body) if len(body) > 65_536 else body
            async with http.post(url, data=data, headers=headers) as answer:
                await answer.read()
                report.answers[f"{phase} {answer.status}"] += 1
                return answer.status

        before = simulator.ledger.request_count()
        for body in bodies:
            match rng.randrange(4):
                case 0:
                    headers = {}
                case 1:
                    headers = {"X-Signature": sign(body, "not-the-token")}
                case 2:
                    original = rng.choice(genuine)
                    body = mutate(original, rng)
                    headers = {"X-Signature": sign(original)}
                case _:
                    headers = {"X-Signature": rng.choice(["", "00", "sha256=", "z" * 64,
                                                          sign(body)[:-1] + "0"])}
            if headers.get("X-Signature") == sign(body):
                continue  # a random guess that happens to be right is no forgery
            status = await post("forged", body, headers)
            if status != 401:
                report.violations.append(f"forged delivery answered {status}: {body[:80]!r}")
        big = b"{" + b" " * (app.settings.smake.webhook_max_body_bytes + 10) + b"}"
        if (status := await post("forged", big, {"X-Signature": sign(big)})) != 413:
            report.violations.append(f"an oversized delivery answered {status}")
        await asyncio.sleep(2)
        report.smake_requests_while_forged = simulator.ledger.request_count() - before
        if report.smake_requests_while_forged:
            report.violations.append(f"{report.smake_requests_while_forged} Smake requests "
                                     f"while only forged deliveries came")

        before = simulator.ledger.request_count()
        for body in bodies:
            status = await post("signed_junk", body, {"X-Signature": sign(body)})
            if status >= 500 or status not in (200, 202, 400):
                report.violations.append(f"signed junk answered {status}: {body[:80]!r}")
        await asyncio.sleep(2)
        report.smake_requests_while_junk = simulator.ledger.request_count() - before
        if report.smake_requests_while_junk:
            report.violations.append(f"{report.smake_requests_while_junk} Smake requests for "
                                     f"signed deliveries naming no waiting order")

        before = simulator.ledger.request_count()
        for body in genuine + rng.sample(genuine, 2):
            status = await post("genuine", body, {"X-Signature": sign(body)})
            if status not in (200, 202):
                report.violations.append(f"a genuine delivery answered {status}")
        await asyncio.sleep(3)
        report.smake_reads_after_genuine = simulator.ledger.request_count() - before
        if report.smake_reads_after_genuine < 1:
            report.violations.append("genuine deliveries made the owner read nothing")
        async with http.get(f"http://127.0.0.1:{app.ops.port}/healthz") as answer:
            report.healthy_at_end = answer.status == 200
        if not report.healthy_at_end:
            report.violations.append("/healthz is not 200 after the deliveries")
