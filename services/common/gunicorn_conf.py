"""gunicorn settings of the HTTP services, all from the environment (see config.SETTINGS)."""
import itertools
import os
import tempfile
import threading
import time

from services.common.config import env as _env, env_int as _env_int, validate as _validate
from services.common.gunicorn_worker import SPARE_CONNECTIONS

_validate()  # in the master: a bad setting stops gunicorn itself, not a loop of failing workers

# The standard OTEL_SERVICE_NAME says which service this gunicorn serves, and so which ports it binds.
_service = os.environ.get("OTEL_SERVICE_NAME", "gateway")
_PORTS = {"auth": ("AUTH_PORT", "AUTH_METRICS_PORT"), "gateway": ("GATEWAY_PORT", "GATEWAY_METRICS_PORT")}
if _service not in _PORTS:
    raise SystemExit(f"OTEL_SERVICE_NAME={_service!r}: the gunicorn config serves only {', '.join(_PORTS)}")
_port, _metrics_port = _PORTS[_service]
bind = f"{_env('BIND_HOST')}:{_env(_port)}"
workers = _env_int("GUNICORN_WORKERS")
# The worker's event loop reads every request before a thread takes it (services/common/gunicorn_worker.py),
# so threads are spent only on work. The gateway's long exchanges (uploads and tus PATCHes, live event
# streams, downloads) hold a thread for as long as their client is slow: each kind has places of its own
# (bounded by the app, 503 too_busy beyond) and threads for them, so the GUNICORN_THREADS threads are
# always there for short requests such as /healthz.
threads = _env_int("GUNICORN_THREADS") + (
    _env_int("UPLOADS_MAX") + _env_int("EVENT_STREAMS_MAX") + _env_int("DOWNLOADS_MAX") if _service == "gateway" else 0)
worker_class = "services.common.gunicorn_worker.GuardedThreadWorker"
# connections beyond the threads wait in the event loop, not in the kernel
# (their memory: README "Sizing the gateway's memory")
worker_connections = threads + SPARE_CONNECTIONS
timeout = _env_int("GUNICORN_TIMEOUT")
graceful_timeout = 30
keepalive = 5
accesslog = None  # every request is already a metric and a span
logger_class = "services.common.gunicorn_worker.NoAccessLogger"
errorlog = "-"
# gunicorn's own messages in the same one-JSON-object-per-line format as the apps'.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "services.common.telemetry.JsonFormatter",
                            "service": _service}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {"gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
                "gunicorn.access": {"handlers": [], "propagate": False}},
}
# Request line and headers bounded; bodies are bounded by the apps themselves.
limit_request_line = 8190

if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Several workers: metrics are summed over all of them through files in this folder.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prom-")


def _serve_metrics(log):
    from services.common import metrics_http

    port = _env_int(_metrics_port)

    def bind():
        # A worker being replaced (timeout, HUP) may hold the port for a few more seconds.
        for attempt in itertools.count():
            try:
                metrics_http.start(port)
                return
            except OSError as exc:
                if attempt == 0 and workers == 1:  # with several workers, all but one wait here
                    log.warning("metrics port %s busy (%s); retrying", port, exc)
                time.sleep(1)

    threading.Thread(target=bind, name="metrics-bind", daemon=True).start()


# /metrics is served on its own port (never the public one) by a worker, never by the arbiter: a
# thread in the arbiter can hold an import lock at the moment it forks a worker, which then hangs
# at boot. With several workers the first to bind serves the sum of all (PROMETHEUS_MULTIPROC_DIR);
# the others keep trying, so one takes over when it is replaced.
def post_worker_init(worker):
    _serve_metrics(worker.log)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

# Several gunicorns run side by side locally; none needs gunicorn's runtime control socket.
control_socket_disable = True
