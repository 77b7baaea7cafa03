# syntax=docker/dockerfile:1
# One image for both processes:
#   docker run IMAGE                          -> webrana-proxy serve (the default command)
#   docker run IMAGE webrana-proxy migrate    -> apply sql/ migrations, then exit
#   docker run IMAGE webrana-dashboard serve  -> the web console
# Stage 1 has the compilers and builds every wheel; stage 2 installs only those wheels on a clean slim base.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webrana_proxy ./webrana_proxy
COPY webrana_dashboard ./webrana_dashboard
# Wheels for the project and all its dependencies (binary wheels are reused, sdists are compiled here).
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ARG WEBRANA_UID=10001
LABEL org.opencontainers.image.title="webrana" \
      org.opencontainers.image.description="Webrana AI API gateway: webrana-proxy and webrana-dashboard"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid "${WEBRANA_UID}" webrana \
 && useradd --system --uid "${WEBRANA_UID}" --gid webrana --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin webrana \
 && mkdir -p /app /var/lib/webrana/journal \
 && chown -R webrana:webrana /var/lib/webrana
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels webrana
COPY sql /app/sql
# Bytecode was compiled at install time; at run time the root filesystem may be read-only.
ENV PYTHONDONTWRITEBYTECODE=1 \
    WEBRANA_PROXY_HOST=0.0.0.0 \
    WEBRANA_PROXY_PORT=8080 \
    WEBRANA_DASHBOARD_HOST=0.0.0.0 \
    WEBRANA_DASHBOARD_PORT=8081 \
    WEBRANA_LOG_FORMAT=json \
    WEBRANA_MIGRATIONS_DIR=/app/sql \
    WEBRANA_USAGE_JOURNAL_DIR=/var/lib/webrana/journal
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
# Liveness of the proxy by default; the dashboard's container overrides WEBRANA_HEALTHCHECK_URL
# (or its own health check) since both processes share this image. No curl here: Python does it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('WEBRANA_HEALTHCHECK_URL', 'http://127.0.0.1:8080/health'), timeout=4)"]
CMD ["webrana-proxy", "serve"]
