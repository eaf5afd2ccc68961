"""gunicorn settings of the HTTP services, all from the environment (see config.SETTINGS)."""
import os
import tempfile

from services.common.config import env as _env, env_int as _env_int

# The standard OTEL_SERVICE_NAME says which service this gunicorn serves, and so which port it binds.
_service = os.environ.get("OTEL_SERVICE_NAME", "gateway")
_PORTS = {"auth": "AUTH_PORT", "gateway": "GATEWAY_PORT"}
if _service not in _PORTS:
    raise SystemExit(f"OTEL_SERVICE_NAME={_service!r}: the gunicorn config serves only {', '.join(_PORTS)}")
bind = f"{_env('BIND_HOST')}:{_env(_PORTS[_service])}"
workers = _env_int("GUNICORN_WORKERS")
threads = _env_int("GUNICORN_THREADS")
worker_class = "gthread"
timeout = _env_int("GUNICORN_TIMEOUT")
graceful_timeout = 30
keepalive = 5
accesslog = None  # every request is already a metric and a span
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


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

# Several gunicorns run side by side locally; none needs gunicorn's runtime control socket.
control_socket_disable = True
