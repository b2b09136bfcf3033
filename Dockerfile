# Image of the logstream-kube controller.
#
# Stage "build" turns the source into a wheel and installs it with its dependencies
# into a virtual environment at /opt/logstream; the final stage copies only that
# environment onto the same slim Python base. Both stages use the same base, so the
# environment's interpreter links stay valid.
#
# The controller writes nothing to disk, so the container runs with a read-only root
# filesystem as uid 65532 (the Helm chart sets both).
#
#   docker build -t logstream-kube:dev .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README.m[d] copies the README when there is one; setuptools only warns without it.
COPY pyproject.toml README.m[d] ./
COPY logstream ./logstream
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/logstream \
 && /opt/logstream/bin/pip install /wheels/*.whl

FROM ${PYTHON_IMAGE}
# The system CA bundle, for a Coder URL whose certificate a public CA signs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/logstream /opt/logstream
# Bytecode was compiled at install time; at run time nothing may write next to it.
ENV PATH=/opt/logstream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="logstream-kube" \
      org.opencontainers.image.description="Streams Kubernetes signals about Coder workspaces into their startup logs" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
ENTRYPOINT ["logstream-kube"]
