"""The HTTP endpoints: /metrics, /healthz, /readyz and the vendors' webhooks (contract
"HTTP")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from orderflow.consumer.metrics import Metrics

Handler = Callable[[web.Request], Awaitable[web.Response]]


class OpsServer:
    """The HTTP listener(s). With a webhook port, the webhooks are served there only, so
    probes and /metrics never share a listener with the internet."""

    def __init__(self, host: str, port: int, metrics: Metrics,
                 healthy: Callable[[], tuple[bool, str]], ready: Callable[[], tuple[bool, str]],
                 webhooks: Mapping[str, Handler] | None = None,
                 webhook_port: int | None = None) -> None:
        self._webhooks = dict(webhooks or {})
        self._host = host
        self._port = port
        self._webhook_port = webhook_port
        self._metrics = metrics
        self._healthy = healthy
        self._ready = ready
        self._runners: list[web.AppRunner] = []
        self.port: int | None = None
        self.webhook_port: int | None = None

    async def start(self) -> None:
        if self._runners:
            return
        ops = self._app()
        # prometheus-client's own handler: the text format or OpenMetrics, as the scraper's
        # Accept asks, gzipped when it accepts that.
        ops.router.add_get("/metrics", make_aiohttp_handler(self._metrics.registry))
        ops.router.add_get("/healthz", self._serve_health)
        ops.router.add_get("/readyz", self._serve_ready)
        hooks = ops if self._webhook_port is None else self._app()
        for vendor, handler in self._webhooks.items():
            hooks.router.add_post(f"/webhooks/{vendor}", handler)
        try:
            self.port = await self._serve(ops, self._port)
            self.webhook_port = self.port
            if hooks is not ops:
                assert self._webhook_port is not None
                self.webhook_port = await self._serve(hooks, self._webhook_port)
        except BaseException:
            await self.stop()
            raise

    @staticmethod
    def _app() -> web.Application:
        # Webhook bodies are read (and bounded) by their handlers.
        return web.Application(client_max_size=2 * 1024 * 1024)

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self._host, port).start()
        # The port actually bound (port 0 asks for any free one).
        addresses = runner.addresses
        return int(addresses[0][1]) if addresses else port

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()

    async def _serve_health(self, request: web.Request) -> web.Response:
        ok, detail = self._healthy()
        return web.Response(status=200 if ok else 503, text=detail + "\n")

    async def _serve_ready(self, request: web.Request) -> web.Response:
        ok, detail = self._ready()
        return web.Response(status=200 if ok else 503, text=detail + "\n")
