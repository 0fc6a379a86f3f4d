# syntax=docker/dockerfile:1
# One image for every component; the subcommand picks the role:
#   agentops operator | agentops sidecar | agentops ui | agentops agent chat|summary
#
#   docker build -t agentops:dev .
#
# Two stages: the builder turns the source into a wheel and installs it with its
# dependencies into a virtualenv; the final stage copies only that virtualenv onto a
# fresh base, so no pip cache, build backend or source tree ships. Every dependency
# has prebuilt wheels for CPython 3.11 on amd64 and arm64, so no compiler is needed
# in either stage.
#
# The base is pinned by tag and by the digest of its multi-architecture index, so a
# rebuild gets the same bytes until someone moves the pin on purpose (with Debian
# security updates the tag is rebuilt; the digest is not). The digest could not be
# resolved from this project's development machine (no registry reachable); it is the
# one published for this tag. Check or refresh it with
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
# and override the whole reference with --build-arg PYTHON_IMAGE=... where needed.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Only what the wheel is built from, and the pinned versions of its dependencies
# (.dockerignore keeps the rest out of the context).
# Commands run from /, never inside /src: its operator/ folder would shadow the
# standard library's `operator` module for a `python -m ...` started there.
COPY pyproject.toml README.md constraints.txt /src/
COPY agentops/ /src/agentops/
COPY operator/ /src/operator/
COPY sidecar/ /src/sidecar/
COPY agents/ /src/agents/
COPY ui/ /src/ui/
# pip compiles every module's bytecode while installing: at run time the root
# filesystem is read-only and Python could not cache it. Dependencies get the exact
# versions `make install` gets (constraints.txt). pip and setuptools are only needed
# to install, so they leave the virtualenv afterwards.
RUN python -m venv /opt/agentops \
 && /opt/agentops/bin/pip wheel --no-deps --wheel-dir /wheels /src \
 && /opt/agentops/bin/pip install --constraint /src/constraints.txt /wheels/*.whl \
 && /opt/agentops/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="agentops" \
      org.opencontainers.image.description="Kubernetes-native operations for AI agents: operator, sidecar, UI and sample agents" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric user, so Kubernetes can verify runAsNonRoot without a name lookup;
# it owns nothing in the image (the code is root-owned and read-only to it).
RUN groupadd --system --gid 10001 agentops \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin agentops
COPY --from=builder /opt/agentops /opt/agentops
ENV PATH=/opt/agentops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    # The only writable place a read-only root filesystem leaves (an emptyDir in the
    # manifests): temporary files and anything that insists on a home directory.
    HOME=/tmp \
    TMPDIR=/tmp \
    # kopf names the operator after getpass.getuser(), which fails for a uid without a
    # passwd entry (e.g. an arbitrary runAsUser); the variable answers first.
    USER=agentops
USER 10001:10001
WORKDIR /tmp
# Documentation only; each subcommand's --help has its flags. 8080: the operator's
# sidecar API, or the sidecar's proxy; 8081: the operator's liveness endpoint;
# 8090: the UI; 9901: the sidecar's admin port (/healthz, /readyz, /metrics).
EXPOSE 8080 8081 8090 9901
# Each subcommand handles SIGTERM itself (kopf, aiohttp), so no init process is needed.
ENTRYPOINT ["agentops"]
CMD ["--help"]
