"""The HTTP endpoints: /metrics, /healthz, /readyz and the vendors' webhooks (contract
"HTTP")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from orderflow.consumer.metrics import Metrics


class OpsServer:
    def __init__(self, host: str, port: int, metrics: Metrics,
                 healthy: Callable[[], tuple[bool, str]], ready: Callable[[], tuple[bool, str]],
                 webhooks: Mapping[str, Callable[[web.Request], Awaitable[web.Response]]]
                 | None = None) -> None:
        self._webhooks = dict(webhooks or {})
        self._host = host
        self._port = port
        self._metrics = metrics
        self._healthy = healthy
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            return
        # Webhook bodies are read (and bounded) by their handlers.
        app = web.Application(client_max_size=2 * 1024 * 1024)
        for vendor, handler in self._webhooks.items():
            app.router.add_post(f"/webhooks/{vendor}", handler)
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        app.router.add_get("/readyz", self._serve_ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # The port actually bound (port 0 asks for any free one).
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _serve_health(self, request: web.Request) -> web.Response:
        ok, detail = self._healthy()
        return web.Response(status=200 if ok else 503, text=detail + "\n")

    async def _serve_ready(self, request: web.Request) -> web.Response:
        ok, detail = self._ready()
        return web.Response(status=200 if ok else 503, text=detail + "\n")
