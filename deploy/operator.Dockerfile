# syntax=docker/dockerfile:1
# The kubetune operator image (what the Helm chart's Deployment runs).
#
#   docker build -f deploy/operator.Dockerfile -t ghcr.io/kubetune/operator:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Build context: the repository root. Dependencies are pinned by
# deploy/operator-constraints.txt (generated from the tested venv by deploy/pins.py).
# Slim: no GPU stack, no trainer dependencies; only kopf, the Kubernetes client,
# prometheus-client, the operator (the `kubetune` distribution) and the contract it shares
# with the trainer (contract/); no trainer code.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kubetune
COPY deploy/operator-constraints.txt /tmp/constraints.txt
RUN /opt/kubetune/bin/pip install --only-binary=:all: -c /tmp/constraints.txt -r /tmp/constraints.txt
COPY contract/ /src/contract/
COPY pyproject.toml README.md /src/operator/
COPY operator/ /src/operator/operator/
RUN /opt/kubetune/bin/pip install --no-deps /src/contract /src/operator \
 && /opt/kubetune/bin/pip check \
 && /opt/kubetune/bin/kubetune operator --help > /dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="kubetune-operator" \
      org.opencontainers.image.description="kubetune operator: runs FineTuneJob resources (kubetune.io/v1alpha1)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kubetune" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
COPY --from=build /opt/kubetune /opt/kubetune
ENV PATH=/opt/kubetune/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Numeric non-root user (the chart's securityContext runs as 65532 with a read-only
# root filesystem; no home directory is needed).
USER 65532:65532
EXPOSE 8080 9100
ENTRYPOINT ["kubetune"]
CMD ["operator"]
