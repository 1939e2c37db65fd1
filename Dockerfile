# orderflow container image.
#
#   docker build -t orderflow:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 \
#       -e ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS=broker:9092 ... orderflow:0.1.0
#
# Two stages: `build` turns the project and every runtime dependency into wheels; `runtime`
# installs only those wheels (no compiler, no network, no dev or sandbox extras) into a
# virtualenv and runs as an unprivileged numeric user. Nothing is written outside /tmp at run
# time, so the root filesystem can be read-only.
#
# tests/deploy/test_image.py performs the RUN steps below, in the same order, in a fresh
# virtualenv and then runs `orderflow run` until /readyz answers 200. Keep the two in step.

# A fixed tag, never `latest`. To pin harder, append the digest your registry reports:
# python:3.11.13-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orderflow ./orderflow
# The project and all of its runtime dependencies as wheels; the extras are not included.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

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
 && /opt/orderflow/bin/pip install --no-cache-dir --no-index --find-links=/wheels /wheels/orderflow-*.whl

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
STOPSIGNAL SIGTERM
# Kubernetes uses its own probes (deploy/kubernetes); this one serves `docker run`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ORDERFLOW_HTTP__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["orderflow"]
CMD ["run"]
