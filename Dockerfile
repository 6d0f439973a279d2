# syntax=docker/dockerfile:1
# One image for both roles: `quiesce operator` (the chart's StatefulSet) and
# `quiesce sidecar` (injected into workloads), so they always agree on the plan.
#
#   docker build -t ghcr.io/quiesce-dev/quiesce:0.1.0 .
#
# Stage 1 builds a virtualenv with quiesce and its dependencies (wheels only, no
# compiler); stage 2 copies just that venv onto a clean slim Python.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all:
RUN python -m venv /opt/quiesce
WORKDIR /src
# Metadata first, so a code change does not invalidate the dependency layer's inputs.
# The product only: the test rig (quiesce/rig/) is not in the build context
# (.dockerignore) nor in the wheel `pip install .` builds (pyproject.toml excludes it).
COPY pyproject.toml README.md ./
COPY quiesce ./quiesce
RUN /opt/quiesce/bin/pip install --no-compile . \
 && /opt/quiesce/bin/python -m compileall -q /opt/quiesce/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="quiesce" \
      org.opencontainers.image.description="Pods leave their load balancers before they stop: operator and sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/quiesce /opt/quiesce
ENV PATH=/opt/quiesce/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532: distroless's "nonroot", the sidecar's default runAsUser. The root filesystem
# can be read-only: nothing is written at run time (bytecode is precompiled).
USER 65532:65532
# Exec form: quiesce is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["quiesce"]
CMD ["--help"]
