# syntax=docker/dockerfile:1
# The image of every vid2mp3 service; SERVICE (auth, gateway, converter, notification or janitor)
# picks the service. Build from the repository root:
#   docker build --build-arg SERVICE=converter -t vid2mp3/converter:dev \
#                --build-arg GIT_SHA=$(git rev-parse HEAD) .
# SERVICE selects the dependency lock (requirements/<service>.lock: the service's extra of
# pyproject.toml), the service's code, and the last stage of the same name (port, health check,
# command). Only the converter gets ffmpeg: the static build of imageio-ffmpeg, pinned with its hash in
# requirements/converter.lock (services/converter/command.py `ffmpeg_executable` finds it).
ARG SERVICE

# ---- build: a virtualenv with the service's hash-checked dependencies and its code
# base image pinned to a patch release (both stages use the same one)
FROM python:3.11.14-slim-bookworm AS build
ARG SERVICE
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements/${SERVICE}.lock requirements/
# every version pinned and every file checked against its hash; the lock also pins setuptools,
# which builds the package below without fetching anything unpinned
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements/${SERVICE}.lock
COPY pyproject.toml ./
COPY services/__init__.py services/
COPY services/common services/common
COPY services/${SERVICE} services/${SERVICE}
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/bin/pip* /opt/venv/lib/python3.11/site-packages/pip

# ---- runtime: the virtualenv only, no compilers, no pip, non-root
FROM python:3.11.14-slim-bookworm AS runtime
ARG SERVICE
# the release: pyproject.toml's [project] version (tests/deploy/test_version.py keeps them equal).
# The processes read the same number from the installed project's metadata (services/common/release.py).
ARG VERSION=0.2.0
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="vid2mp3-${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.source="https://github.com/vid2mp3/vid2mp3" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="vid2mp3"
# No Debian ffmpeg: the converter's is in its venv (a static build that starts in ~10 ms where
# Debian's, with its 215 shared libraries, takes ~80 ms: issue 24, loadtest/PROFILING.md), and its
# probe is PyAV, with its own libraries.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    OTEL_SERVICE_NAME=${SERVICE} \
    GIT_SHA=${GIT_SHA} \
    BIND_HOST=0.0.0.0
USER 10001:10001
# SIGTERM: the HTTP services drain their requests (gunicorn); the workers stop consuming and finish
# the job in hand (give the converter a long stop timeout)
STOPSIGNAL SIGTERM

# ---- one stage per service: what differs is the port, the health check and the command.
# Ports are not set here: each is the default of its <SERVICE>_PORT / <SERVICE>_METRICS_PORT in
# services/common/config.py, which the health checks read (k8s config.env repeats them beside containerPort).
# Kubernetes uses its own probes on the same endpoints; the health checks serve Docker and compose.
# Workers, threads and timeout of gunicorn come from GUNICORN_WORKERS/THREADS/TIMEOUT
# (services/common/gunicorn_conf.py).
FROM runtime AS auth
LABEL org.opencontainers.image.description="vid2mp3 auth: users, password hashes and JWTs (Flask on gunicorn)"
# 5000 the API; 9103 /metrics, for Prometheus only (never publish or route it)
EXPOSE 5000 9103
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; from services.common.config import env; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % env('AUTH_PORT'), timeout=4)"]
CMD ["gunicorn", "-c", "python:services.common.gunicorn_conf", "services.auth:create_app()"]

FROM runtime AS gateway
LABEL org.opencontainers.image.description="vid2mp3 gateway: public REST API (Flask on gunicorn)"
# 8080 the API; 9102 /metrics, for Prometheus only (never publish or route it)
EXPOSE 8080 9102
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; from services.common.config import env; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % env('GATEWAY_PORT'), timeout=4)"]
CMD ["gunicorn", "-c", "python:services.common.gunicorn_conf", "services.gateway:create_app()"]

FROM runtime AS converter
LABEL org.opencontainers.image.description="vid2mp3 converter: RabbitMQ worker converting videos to MP3 with ffmpeg"
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; from services.common.config import env; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % env('CONVERTER_METRICS_PORT'), timeout=4)"]
CMD ["python", "-m", "services.converter"]

FROM runtime AS notification
LABEL org.opencontainers.image.description="vid2mp3 notification: RabbitMQ worker sending job emails"
EXPOSE 9101
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; from services.common.config import env; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % env('NOTIFICATION_METRICS_PORT'), timeout=4)"]
CMD ["python", "-m", "services.notification"]

FROM runtime AS janitor
LABEL org.opencontainers.image.description="vid2mp3 janitor: retention and leftovers, one round per run (a Kubernetes CronJob)"
# Runs to completion: no port and no health check (the exit code says how the round went; the
# Job's activeDeadlineSeconds bounds a hung one). compose runs `python -m services.janitor`, a loop.
HEALTHCHECK NONE
CMD ["python", "-m", "services.janitor", "--once"]

# ---- the image: the stage named by SERVICE (a stage of this file, so it has no tag of its own)
# checkov:skip=CKV_DOCKER_7:FROM ${SERVICE} names one of the stages above; both base images are pinned
FROM ${SERVICE} AS image
