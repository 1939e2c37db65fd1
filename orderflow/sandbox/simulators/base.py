"""What the three vendor simulators share: fault knobs, the ledger of what they received,
the `/_sim/` control API, and a server that runs a simulator in the caller's event loop.

A simulator is an independent reading of one vendor's documents (see
the vendors' published API pages), served over real HTTP on loopback. It imports nothing of the
adapters or the engine, so a test against it checks an adapter against the documents.

Faults are decided in one middleware *before* the vendor handler runs, so a faulted request
has no side effect. The one exception is `fail_after_effect_rate`: a create that succeeded is
answered with a 5xx or a dropped connection, the way a timeout looks after the vendor has
already acted; the service must recover from it by looking up before creating again.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import json
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Clock = Callable[[], float]
"""Seconds on a monotonic scale. Vendor timelines (token expiry, print files, order states)
and fault windows read it, so tests can inject a `ManualClock` and stay fast."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_DROPPED = 0
"""The status the ledger records when no answer was sent: the connection was dropped, or the
client had gone away before a slow answer was ready."""

CONTROL_PATH = "/_sim"


class ManualClock:
    """A clock that moves only when told to: `clock.advance(5)`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds


# ----------------------------------------------------------------------------- fault knobs

FailAfterEffectMode = Literal["error", "drop", "mixed"]


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """What the fault middleware does instead of (or before) calling the vendor handler."""

    kind: Literal["outage", "throttle", "error", "slow"]
    status: int = 0
    retry_after_s: float = 0.0
    delay_s: float = 0.0


@dataclass
class FaultKnobs:
    """Mutable fault settings of one simulator. All default to "no fault".

    Rates are shares of requests in [0, 1], drawn from a `random.Random(seed)` so a run with
    the same seed and the same request order faults the same requests."""

    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    slow_rate: float = 0.0
    # Meant to exceed the client's timeout; a slow answer whose client has gone is not run.
    slow_s: float = 30.0
    fail_after_effect_rate: float = 0.0
    fail_after_effect_mode: FailAfterEffectMode = "mixed"
    # Sent in `Retry-After` (whole seconds, rounded up) while throttled.
    retry_after_s: float = 1.0
    seed: int | None = None
    # Fault windows end at these clock readings; math.inf means "until switched off".
    throttle_until: float | None = None
    outage_until: float | None = None
    clock: Clock = field(default=time.monotonic, repr=False, compare=False)
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def reseed(self, seed: int | None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def throttle(self, seconds: float, retry_after_s: float | None = None) -> None:
        """Answer every request 429 with `Retry-After` for `seconds` from now."""
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s
        self.throttle_until = self.clock() + seconds if seconds > 0 else None

    def end_throttle(self) -> None:
        self.throttle_until = None

    def outage(self, seconds: float) -> None:
        """Answer every request 503 for `seconds` from now (0 ends an outage)."""
        self.outage_until = self.clock() + seconds if seconds > 0 else None

    def outage_on(self) -> None:
        self.outage_until = math.inf

    def outage_off(self) -> None:
        self.outage_until = None

    @property
    def outage_active(self) -> bool:
        return self.outage_until is not None and self.clock() < self.outage_until

    @property
    def throttle_active(self) -> bool:
        return self.throttle_until is not None and self.clock() < self.throttle_until

    def restore(self, other: FaultKnobs) -> None:
        """Take every setting of `other` (in place, so holders of this object see it)."""
        for knob in dataclasses.fields(self):
            if knob.init and knob.name != "clock":
                setattr(self, knob.name, getattr(other, knob.name))
        self.reseed(self.seed)

    def copy(self) -> FaultKnobs:
        return dataclasses.replace(self)

    # -- the draws, in the order the middleware applies them

    def draw_latency(self) -> float:
        jitter = self.rng.uniform(0, self.latency_jitter_s) if self.latency_jitter_s > 0 else 0.0
        return self.latency_s + jitter

    def draw_fault(self) -> InjectedFault | None:
        if self.outage_active:
            return InjectedFault("outage", status=503)
        if self.throttle_active:
            return InjectedFault("throttle", status=429, retry_after_s=self.retry_after_s)
        if self.error_rate > 0 and self.rng.random() < self.error_rate:
            return InjectedFault("error", status=self.rng.choice(self.error_statuses or (500,)))
        if self.slow_rate > 0 and self.rng.random() < self.slow_rate:
            return InjectedFault("slow", delay_s=self.slow_s)
        return None

    def draw_fail_after_effect(self) -> InjectedFault | None:
        """For a request whose effect was applied: answer it with a 5xx, or drop it?"""
        if self.fail_after_effect_rate <= 0 or self.rng.random() >= self.fail_after_effect_rate:
            return None
        mode = self.fail_after_effect_mode
        if mode == "mixed":
            mode = "drop" if self.rng.random() < 0.5 else "error"
        if mode == "drop":
            return InjectedFault("error", status=STATUS_DROPPED)
        return InjectedFault("error", status=self.rng.choice(self.error_statuses or (500,)))

    # -- the control API's view

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()

        def remaining(until: float | None) -> float | None:
            if until is None or until == math.inf:
                return None
            return max(0.0, until - now)

        return {
            "latency_s": self.latency_s,
            "latency_jitter_s": self.latency_jitter_s,
            "error_rate": self.error_rate,
            "error_statuses": list(self.error_statuses),
            "slow_rate": self.slow_rate,
            "slow_s": self.slow_s,
            "fail_after_effect_rate": self.fail_after_effect_rate,
            "fail_after_effect_mode": self.fail_after_effect_mode,
            "retry_after_s": self.retry_after_s,
            "seed": self.seed,
            "outage_active": self.outage_active,
            "outage_remaining_s": remaining(self.outage_until) if self.outage_active else None,
            "throttle_active": self.throttle_active,
            "throttle_remaining_s": (
                remaining(self.throttle_until) if self.throttle_active else None
            ),
        }

    def apply_patch(self, raw: Mapping[str, Any]) -> None:
        """Apply a JSON patch from `POST /_sim/faults`. Raises pydantic's ValidationError."""
        patch = FaultPatch.model_validate(raw)
        given = patch.model_fields_set
        for name in _PLAIN_KNOBS & given:
            setattr(self, name, getattr(patch, name))
        if "error_statuses" in given:
            self.error_statuses = tuple(patch.error_statuses)
        if "seed" in given:
            self.reseed(patch.seed)
        if "outage" in given:
            self.outage_on() if patch.outage else self.outage_off()
        if "outage_s" in given:
            self.outage(patch.outage_s)
        if "throttle_s" in given:
            self.throttle(patch.throttle_s)


class FaultPatch(BaseModel):
    """The body of `POST /_sim/faults`: only the keys given are changed."""

    model_config = ConfigDict(extra="forbid")

    latency_s: float = Field(default=0.0, ge=0)
    latency_jitter_s: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_statuses: list[int] = Field(default_factory=list, min_length=1)
    slow_rate: float = Field(default=0.0, ge=0, le=1)
    slow_s: float = Field(default=0.0, ge=0)
    fail_after_effect_rate: float = Field(default=0.0, ge=0, le=1)
    fail_after_effect_mode: FailAfterEffectMode = "mixed"
    retry_after_s: float = Field(default=0.0, ge=0)
    seed: int | None = None
    outage: bool = False
    outage_s: float = Field(default=0.0, ge=0)
    throttle_s: float = Field(default=0.0, ge=0)


_PLAIN_KNOBS = frozenset({
    "latency_s", "latency_jitter_s", "error_rate", "slow_rate", "slow_s",
    "fail_after_effect_rate", "fail_after_effect_mode", "retry_after_s",
})


# ----------------------------------------------------------------------------- ledger


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    route: str
    status: int  # STATUS_DROPPED when no answer was sent


class Ledger:
    """Every request a simulator answered, and every order it created, per business key
    (Zakeke order code, Smake external_identifier, Reevoo order_ref).

    Tests assert effectively-once delivery with it: `duplicates()` must stay empty."""

    def __init__(self) -> None:
        self._requests: Counter[RequestRecord] = Counter()
        self._created: Counter[str] = Counter()
        # Wall-clock times of every create per key: a duplicate is then set beside the
        # faults of the same moment (a chaos run asks which kill explains it).
        self._created_at: dict[str, list[float]] = {}

    def record_request(self, method: str, route: str, status: int) -> None:
        self._requests[RequestRecord(method, route, status)] += 1

    def record_create(self, key: str) -> None:
        self._created[key] += 1
        self._created_at.setdefault(key, []).append(time.time())

    def created_count(self, key: str) -> int:
        return self._created[key]

    @property
    def created(self) -> dict[str, int]:
        return dict(self._created)

    @property
    def total_created(self) -> int:
        return sum(self._created.values())

    def duplicates(self) -> dict[str, int]:
        """Keys created more than once, with how many times."""
        return {key: count for key, count in self._created.items() if count > 1}

    def request_count(
        self, route: str | None = None, *, method: str | None = None, status: int | None = None
    ) -> int:
        """Requests answered, optionally only those of a route name, method and status."""
        return sum(
            count for record, count in self._requests.items()
            if (route is None or record.route == route)
            and (method is None or record.method == method)
            and (status is None or record.status == status)
        )

    @property
    def total_requests(self) -> int:
        return sum(self._requests.values())

    def reset(self) -> None:
        self._requests.clear()
        self._created.clear()
        self._created_at.clear()

    def summary(self) -> dict[str, Any]:
        by_route: dict[str, dict[str, int]] = {}
        for record, count in sorted(
            self._requests.items(), key=lambda item: (item[0].route, item[0].method, item[0].status)
        ):
            statuses = by_route.setdefault(f"{record.method} {record.route}", {})
            label = "dropped" if record.status == STATUS_DROPPED else str(record.status)
            statuses[label] = statuses.get(label, 0) + count
        return {
            "created": dict(sorted(self._created.items())),
            "total_created": self.total_created,
            "distinct_created": len(self._created),
            "duplicates": dict(sorted(self.duplicates().items())),
            "duplicate_times": {key: self._created_at[key] for key in sorted(self.duplicates())},
            "requests": by_route,
            "total_requests": self.total_requests,
        }


# ----------------------------------------------------------------------------- simulator base

_EFFECT_APPLIED = web.RequestKey("sim_effect_applied", bool)


def mark_effect_applied(request: web.Request) -> None:
    """Called by a handler once it has created something: only such requests can be chosen
    for `fail_after_effect_rate`."""
    request[_EFFECT_APPLIED] = True


class MalformedBody(ValueError):
    """The request body is not the JSON the endpoint needs."""


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"request body is not valid JSON: {exc}") from None


def is_json_number(value: Any) -> bool:
    """A JSON number (bool is an int in Python, but not in JSON)."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    )


def is_json_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


class VendorSimulator(abc.ABC):
    """One vendor's API as documented, with fault knobs, a ledger and the `/_sim/` API.

    Subclasses add the vendor routes (named: the ledger counts by route name), keep their
    state, and declare their adjustable settings in `Config` (served at `/_sim/config`)."""

    vendor: ClassVar[str]

    class Config(BaseModel):
        """Settings changeable through `POST /_sim/config`; names are attributes of the
        simulator."""

        model_config = ConfigDict(extra="forbid")

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        knobs: FaultKnobs | None = None,
        seed: int | None = None,
        api_prefix: str = "",
    ) -> None:
        self.clock = clock
        self.knobs = knobs if knobs is not None else FaultKnobs(seed=seed)
        self.knobs.clock = clock
        self._baseline_knobs = self.knobs.copy()
        self.seed = seed
        # Vendor behaviour (ids, failures, jitter) draws from its own generator, so turning
        # a fault knob does not change which orders fail.
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.api_prefix = "/" + api_prefix.strip("/") if api_prefix.strip("/") else ""

    # -- what each vendor provides

    @abc.abstractmethod
    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Add the vendor's documented routes, each with a name."""

    @abc.abstractmethod
    def reset_state(self) -> None:
        """Forget every token, order and submission."""

    # -- shared

    def reset(self) -> None:
        """Back to a fresh simulator: no state, empty ledger, the knobs it was built with."""
        self.reset_state()
        self.ledger.reset()
        self.knobs.restore(self._baseline_knobs)
        self.rng = random.Random(self.seed)

    def flows_snapshot(self) -> dict[str, Any]:
        """What this vendor holds that a harness checks an order's flow against (served at
        `GET /_sim/flows`); times are wall-clock seconds (`wall_time`)."""
        return {}

    def wall_time(self, at: float) -> float:
        """A reading of this simulator's clock as wall-clock seconds."""
        return time.time() - self.clock() + at

    def config_snapshot(self) -> dict[str, Any]:
        return {
            name: _jsonable(getattr(self, name)) for name in type(self).Config.model_fields
        }

    def apply_config(self, raw: Mapping[str, Any]) -> None:
        """Change the settings named in `raw`. Raises pydantic's ValidationError."""
        # Validated over the current settings, so a patch needs only the keys it changes.
        checked = type(self).Config.model_validate({**self.config_snapshot(), **raw})
        for name in raw:
            setattr(self, name, getattr(checked, name))

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._fault_middleware])
        self._add_control_routes(app.router, CONTROL_PATH, named=True)
        if self.api_prefix:
            # Also under the API prefix, so `{base_url}/_sim/...` works for every vendor.
            self._add_control_routes(app.router, self.api_prefix + CONTROL_PATH, named=False)
        self.add_routes(app.router)
        return app

    def _add_control_routes(self, router: web.UrlDispatcher, root: str, *, named: bool) -> None:
        def name(short: str) -> str | None:
            return f"sim.{short}" if named else None

        router.add_get(f"{root}/ledger", self._get_ledger, name=name("ledger"))
        router.add_get(f"{root}/flows", self._get_flows, name=name("flows"))
        router.add_get(f"{root}/faults", self._get_faults, name=name("faults"))
        router.add_post(f"{root}/faults", self._post_faults, name=name("faults_patch"))
        router.add_get(f"{root}/config", self._get_config, name=name("config"))
        router.add_post(f"{root}/config", self._post_config, name=name("config_patch"))
        router.add_post(f"{root}/reset", self._post_reset, name=name("reset"))

    def _is_control(self, request: web.Request) -> bool:
        path = request.path
        return path.startswith(CONTROL_PATH + "/") or (
            bool(self.api_prefix) and path.startswith(self.api_prefix + CONTROL_PATH + "/")
        )

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if self._is_control(request):
            return await handler(request)
        route = _route_name(request)
        status = 500
        try:
            delay = self.knobs.draw_latency()
            if delay > 0:
                await asyncio.sleep(delay)
            fault = self.knobs.draw_fault()
            if fault is not None and fault.kind != "slow":
                refusal = _fault_response(fault)
                status = refusal.status
                return refusal
            if fault is not None:
                await asyncio.sleep(fault.delay_s)
                if request.transport is None or request.transport.is_closing():
                    # The client gave up: nothing is done, as nobody waits for the answer.
                    status = STATUS_DROPPED
                    return web.Response(status=499)
            response: web.StreamResponse = await handler(request)
            status = response.status
            if request.get(_EFFECT_APPLIED):
                after = self.knobs.draw_fail_after_effect()
                if after is not None and after.status == STATUS_DROPPED:
                    status = STATUS_DROPPED
                    if request.transport is not None:
                        request.transport.close()
                    return response
                if after is not None:
                    response = _fault_response(after)
                    status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.ledger.record_request(request.method, route, status)

    async def _get_ledger(self, request: web.Request) -> web.Response:
        return json_response({"vendor": self.vendor, **self.ledger.summary()})

    async def _get_flows(self, request: web.Request) -> web.Response:
        return json_response(self.flows_snapshot())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.knobs.snapshot())

    async def _post_faults(self, request: web.Request) -> web.Response:
        return await self._patch(request, self.knobs.apply_patch, self.knobs.snapshot)

    async def _get_config(self, request: web.Request) -> web.Response:
        return json_response(self.config_snapshot())

    async def _post_config(self, request: web.Request) -> web.Response:
        return await self._patch(request, self.apply_config, self.config_snapshot)

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"reset": True})

    async def _patch(
        self,
        request: web.Request,
        apply: Callable[[Mapping[str, Any]], None],
        snapshot: Callable[[], dict[str, Any]],
    ) -> web.Response:
        try:
            body = await read_json(request)
        except MalformedBody as exc:
            return json_response({"message": str(exc)}, status=400)
        if not isinstance(body, dict):
            return json_response({"message": "expected a JSON object"}, status=400)
        try:
            apply(body)
        except ValidationError as exc:
            errors = json.loads(exc.json(include_url=False, include_input=False))
            return json_response({"message": "invalid patch", "errors": errors}, status=400)
        return json_response(snapshot())


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    if route.name:
        return route.name
    return "unmatched" if route.resource is None else route.resource.canonical


def _fault_response(fault: InjectedFault) -> web.Response:
    if fault.kind == "outage":
        return json_response({"message": "Service Unavailable"}, status=503)
    if fault.kind == "throttle":
        # Retry-After takes whole seconds (RFC 9110), so a fractional setting is rounded up.
        return json_response(
            {"message": "Too Many Attempts."},
            status=429,
            headers={"Retry-After": str(max(0, math.ceil(fault.retry_after_s)))},
        )
    message = "Service Unavailable" if fault.status == 503 else "Internal Server Error"
    return json_response({"message": message}, status=fault.status)


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- server

SimulatorT = TypeVar("SimulatorT", bound=VendorSimulator)


class SimulatorServer(Generic[SimulatorT]):
    """Serves one simulator on loopback in the caller's event loop.

        async with SimulatorServer(ZakekeSimulator()) as server:
            ... server.base_url ... server.state.ledger ...

    `base_url` is what a service is configured with (it includes the API prefix, e.g. Smake's
    `/v2/apps/1`); `root_url` is the bare origin. `/_sim/` answers under both."""

    def __init__(self, simulator: SimulatorT, *, shutdown_timeout_s: float = 0.5) -> None:
        self.state = simulator
        self.app = simulator.build_app()
        self._shutdown_timeout_s = shutdown_timeout_s
        self._runner: web.AppRunner | None = None
        self._root_url: str | None = None

    @property
    def root_url(self) -> str:
        if self._root_url is None:
            raise RuntimeError("the simulator server is not started")
        return self._root_url

    @property
    def base_url(self) -> str:
        return self.root_url + self.state.api_prefix

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (port 0: any free port) and return `base_url`. Idempotent."""
        if self._runner is not None:
            return self.base_url
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self._shutdown_timeout_s
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._root_url = f"http://{shown_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and drop open connections. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
