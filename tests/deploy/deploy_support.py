"""What the deploy/ checks share: paths, the command-line tools they drive, the rendered
manifests, and a live `orderflow run` beside the embedded broker and the vendor simulators."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZATIONS = {
    "base": DEPLOY / "kubernetes" / "base",
    "example": DEPLOY / "kubernetes" / "overlays" / "example",
    "strimzi": DEPLOY / "kubernetes" / "overlays" / "strimzi",
}

# Until the service core lands, the checks that need a running `orderflow run` wait for it.
HAS_CLI = importlib.util.find_spec("orderflow.cli") is not None
needs_cli = pytest.mark.skipif(
    not HAS_CLI, reason="orderflow.cli (the `orderflow run` command) does not exist yet")


def tool(name: str) -> str:
    """The path of a command-line tool that `make test` installs (scripts/system-deps, or the
    dev extra for those that come from PyPI). Missing is a failure, not a skip: these checks
    are what proves the deploy files."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which(name, path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(f"{name} is not installed: run `make system-deps` (or `make test`)")
    return found


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kwargs.pop("timeout", 300),
                          **kwargs)


def render(name: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of one of KUSTOMIZATIONS, as a list of objects."""
    result = run([tool("kubectl"), "kustomize", str(KUSTOMIZATIONS[name])])
    assert result.returncode == 0, f"kubectl kustomize {name} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, status: int, timeout_s: float,
             process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Poll `url` until it answers `status`; fail early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            pytest.fail(f"process exited with {process.returncode} before {url} answered "
                        f"{status}:\n{tail}")
        try:
            code, _ = http_get(url)
            if code == status:
                return
            last = code
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    pytest.fail(f"{url} did not answer {status} within {timeout_s}s (last: {last}):\n{tail}")


def stop(process: subprocess.Popen[Any], timeout_s: float = 30.0) -> int:
    """SIGTERM, as Kubernetes stops a pod; SIGKILL only past the timeout. The exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


# ------------------------------------------------------------------ a live `orderflow run`

INPUT_PARTITIONS = 3


@dataclass
class Topics:
    orders_created: str = "orders.created"
    status: str = "orders.status"
    print_files_ready: str = "orders.print-files-ready"
    dead_letter: str = "orders.created.dlq"
    tracking: str = "orderflow.tracking"


def create_platform_topics(bootstrap_servers: str, topics: Topics) -> None:
    """The topics the platform creates (the service creates its tracking topic itself)."""
    import asyncio

    from orderflow.sandbox.broker import create_topics

    asyncio.run(create_topics(bootstrap_servers, [
        (topics.orders_created, INPUT_PARTITIONS, None), (topics.status, INPUT_PARTITIONS, None),
        (topics.print_files_ready, INPUT_PARTITIONS, None),
        (topics.dead_letter, INPUT_PARTITIONS, None),
    ]))


def service_env(bootstrap_servers: str, http_port: int, topics: Topics,
                vendor_urls: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ORDERFLOW_* environment of a deployment, pointed at this machine. Only the contract's
    variables and those the manifests set; vendors off unless a simulator URL is given."""
    from orderflow.config.settings import TopicSettings
    from orderflow.sandbox.processes import sandbox_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env.update(sandbox_env(bootstrap_servers, TopicSettings(**vars(topics)), vendor_urls or {},
                           http_port=http_port, group_id="orderflow-deploy-test"))
    del env["ORDERFLOW_KAFKA__HEARTBEAT_INTERVAL_MS"]  # the manifests leave it at its default
    env.update({
        "ORDERFLOW_LOG__FORMAT": "json",
        "ORDERFLOW_SHUTDOWN_GRACE_S": "5",
        # Polls fast enough that orders finish within the test.
        "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "0.5", "ORDERFLOW_POLL__MAX_INTERVAL_S": "1",
    })
    return env


@contextlib.contextmanager
def orderflow_run(executable: str, env: Mapping[str, str],
                  log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`orderflow run` as a process of its own, stopped with SIGTERM at the end."""
    with open(log, "wb") as out:
        process = subprocess.Popen([executable, "run"], env=dict(env), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield process
        finally:
            stop(process)


@contextlib.contextmanager
def vendor_simulators(log: Path, **knobs: str) -> Iterator[dict[str, str]]:
    """The three vendor simulators in a process of their own (`python -m
    orderflow.sandbox.simulators all`): vendor -> base URL."""
    args = [sys.executable, "-m", "orderflow.sandbox.simulators", "all"]
    for name, value in knobs.items():
        args += [f"--{name.replace('_', '-')}", value]
    with open(log, "wb") as err:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err,
                                   stdin=subprocess.DEVNULL)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                process.wait(timeout=10)
                pytest.fail(f"the vendor simulators exited with {process.returncode}:\n"
                            f"{log.read_text()[-4000:]}")
            yield dict(json.loads(line))
        finally:
            stop(process, timeout_s=10)
            if process.stdout is not None:
                process.stdout.close()
