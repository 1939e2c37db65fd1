# orderflow container image.
#
#   docker build -t orderflow:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 \
#       -e ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS=broker:9092 ... orderflow:0.1.0
#
# Two stages: `build` turns every runtime dependency, exactly as requirements/image.txt pins
# it (versions and hashes: a wheel PyPI serves differently tomorrow fails the build), and the
# project into wheels, and writes the image's SBOM; `runtime` installs only those wheels (no
# compiler, no network, no dev or sandbox extras) into a virtualenv and runs as an
# unprivileged numeric user. Nothing is written outside /tmp at run time, so the root
# filesystem can be read-only. `make lock` rewrites the lock files; Dependabot
# (.github/dependabot.yml) proposes updates of them and of the base image.
#
# tests/deploy/test_image_install.py performs the RUN steps below, in the same order, in a fresh
# virtualenv and then runs `orderflow run` until /readyz answers 200. Keep the two in step.

# The base image by tag and digest: the tag says what it is, the digest makes it the same
# bytes on every build (the multi-platform index of python:3.11.13-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/image.txt requirements/build-tools.txt ./requirements/
# The runtime dependencies as locked (with the otel extra: traces cost nothing until the
# OTEL_* environment asks for them), then the project itself.
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements/image.txt
COPY pyproject.toml README.md ./
COPY orderflow ./orderflow
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .
# The SBOM (CycloneDX JSON) of what the image installs, from the lock; the tool itself is
# pinned by hash and stays in this stage.
RUN python -m venv /opt/sbom \
 && /opt/sbom/bin/pip install --no-cache-dir --require-hashes -r requirements/build-tools.txt \
 && /opt/sbom/bin/cyclonedx-py requirements requirements/image.txt \
      --output-reproducible --output-format JSON --output-file /wheels/sbom.cdx.json

FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="orderflow" \
      org.opencontainers.image.description="Routes order.created events from Kafka to Zakeke, Smake and Reevoo, follows each vendor's work, and publishes what happened." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# Read-only root: never write .pyc files at run time (pip compiles them at install time),
# unbuffered logs, temporary files and HOME under /tmp (an emptyDir in Kubernetes).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    PATH=/opt/orderflow/bin:$PATH

RUN groupadd --system --gid 10001 orderflow \
 && useradd --system -l --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin orderflow

# Only the wheels built above, offline: what runs is exactly what was built.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/orderflow \
 && /opt/orderflow/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
      "$(ls /wheels/orderflow-*.whl)[otel]" \
 && cp /wheels/sbom.cdx.json /opt/orderflow/sbom.cdx.json

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
STOPSIGNAL SIGTERM
# Kubernetes uses its own probes (deploy/kubernetes); this one serves `docker run`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ORDERFLOW_HTTP__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["orderflow"]
CMD ["run"]
