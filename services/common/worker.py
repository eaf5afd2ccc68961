"""Process harness of the queue workers: /metrics, /healthz and /readyz over HTTP, SIGTERM handling."""
from __future__ import annotations

import json
import logging
import signal
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from . import config, metrics
from .messaging import Consumer

log = logging.getLogger(__name__)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # scrapes and probes are not worth a log line each
        pass


def _app(consumer: Consumer):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body, content_type = metrics.render(environ.get("HTTP_ACCEPT"))
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        if path in ("/healthz", "/readyz"):
            ok = consumer.healthy() if path == "/healthz" else consumer.connected.is_set()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps({"status": "ok" if ok else "unavailable"}).encode()]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": {"code": "not_found", "message": "no such endpoint"}}']

    return app


def serve(consumer: Consumer) -> None:
    """Expose metrics and health, stop gracefully on SIGTERM/SIGINT, and consume until stopped."""
    port = config.env_int("METRICS_PORT")
    server = make_server(config.env("BIND_HOST"), port, _app(consumer), server_class=_Server,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()

    def on_signal(signum, _frame):
        log.info("stopping: finishing the message in hand", extra={"signal": signal.Signals(signum).name})
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("worker started", extra={"queue": consumer.queue, "metrics_port": port})
    try:
        consumer.run()
    finally:
        server.shutdown()
        from . import telemetry

        telemetry.flush()
        log.info("worker stopped", extra={"queue": consumer.queue})
