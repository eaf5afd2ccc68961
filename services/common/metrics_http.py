"""The metrics endpoint of every process, on a port of its own and never on a public one.

A small threaded WSGI server in a daemon thread answers /metrics, plus the health routes a process
adds (the queue workers' /healthz and /readyz); anything else is a JSON 404. The queue workers start
it from their harness (worker_process.py), auth and gateway from their gunicorn config (gunicorn_conf.py).
"""
from __future__ import annotations

import json
import threading
from socketserver import ThreadingMixIn
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from . import config, metrics, release


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # scrapes and probes are not worth a log line each
        pass


def _app(health: dict[str, Callable[[], bool]]):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body, content_type = metrics.render(environ.get("HTTP_ACCEPT"))
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        if path in health:
            ok = health[path]()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            status = {"status": "ok" if ok else "unavailable"}
            if path == "/healthz":  # as the HTTP services' /healthz (web.py)
                status["version"] = release.version()
            return [json.dumps(status).encode()]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": {"code": "not_found", "message": "no such endpoint"}}']

    return app


def start(port: int, health: dict[str, Callable[[], bool]] | None = None) -> WSGIServer:
    """Serve /metrics (and `health`: path -> check) on BIND_HOST:port from a daemon thread."""
    server = make_server(config.env("BIND_HOST"), port, _app(health or {}), server_class=_Server,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
