# refflow: one image for web, worker, scheduler and migrations.
# Build:  docker build -t refflow .
# Run:    docker compose up -d   (see docs/operations.md)

# -- build stage: wheels only; compilers never reach the runtime image ---------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
COPY plugins ./plugins
RUN python -m venv /opt/refflow \
 && /opt/refflow/bin/pip install --upgrade pip \
 && /opt/refflow/bin/pip install . \
 && /opt/refflow/bin/pip uninstall -y pip setuptools wheel || true

# -- runtime stage -------------------------------------------------------------
FROM python:3.11-slim
LABEL org.opencontainers.image.title="refflow" \
      org.opencontainers.image.description="Referral workflow service for rehabilitation clinics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/refflow/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REFFLOW_ENV=production \
    REFFLOW_DATA_DIR=/var/lib/refflow \
    PROMETHEUS_MULTIPROC_DIR=/tmp/refflow-metrics
# fonts-wqy-microhei: the Chinese, Japanese and Korean glyphs of patients' names
# (documents/fonts.py); DejaVu Sans ships with the package.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 refflow \
 && useradd --system --uid 10001 --gid refflow --home-dir /var/lib/refflow \
      --shell /usr/sbin/nologin refflow \
 && mkdir -p /var/lib/refflow \
 && chown refflow:refflow /var/lib/refflow
COPY --from=build /opt/refflow /opt/refflow
USER 10001:10001
WORKDIR /var/lib/refflow
VOLUME ["/var/lib/refflow"]
EXPOSE 8000
# /healthz answers when the process is up; compose overrides it for workers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["refflow"]
CMD ["web", "--host", "0.0.0.0", "--port", "8000"]
