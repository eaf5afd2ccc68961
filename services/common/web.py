"""What both Flask services share: problem-details errors, RED metrics, health endpoints, tracing.

ApiError is for errors of HTTP itself, raised by the routes (a missing header, a wrong Content-Type,
a malformed body); the domain's refusals are services/common/errors.py's, answered by the gateway
(services/gateway/http_errors.py)."""
from __future__ import annotations

import json
import logging
import time
from html import escape
from typing import Callable

from flask import Blueprint, Flask, Response, abort, g, has_request_context, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from prometheus_client import Counter, Histogram

from . import config, metrics, problems, ratelimit, release, sampling, telemetry

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP error answered as problem details (services/common/problems.py), with `headers`."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# RED metrics of both HTTP services (names kept from the seed system: dashboards and alerts use them).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"])
HTTP_DURATION = Histogram("http_request_duration_seconds", "Time to answer an HTTP request",
                          ["service", "method", "route"], buckets=HTTP_BUCKETS)
# Label values come from fixed sets, never from what a client sends: any method name and any path
# would otherwise each add a series (21 per method for the histogram and the counter).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "<unmatched>"


def method_label(method: str) -> str:
    return method if method in HTTP_METHODS else OTHER_METHOD


def route_label() -> str:
    """The rule the request matched (`/jobs/<job_id>`), or one value for every path that matched none."""
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE


# Stable machine-readable codes for the HTTP errors Flask/werkzeug raise on their own.
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    408: "request_timeout", 411: "length_required", 413: "payload_too_large", 415: "unsupported_media_type",
    416: "range_not_satisfiable", 429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    """The one way both services answer an error: RFC 9457 problem details, whatever the client's Accept
    (a JSON client reads application/problem+json as JSON; an error is never turned into a 406)."""
    instance = request.path if has_request_context() else None
    response = Response(problems.encode(problems.body(status, code, message, instance)), status=status,
                        mimetype=problems.MEDIA_TYPE)
    # `instance` is the path the client sent, JSON-escaped: never read as anything but JSON
    response.headers["X-Content-Type-Options"] = "nosniff"
    for key, value in problems.headers(status, headers).items():
        response.headers[key] = value
    return response


def streams_body(view: Callable) -> Callable:
    """Mark a view whose request body may be larger than HTTP_BODY_BUFFER_BYTES (an upload): the
    gunicorn worker hands it to a thread as soon as its head is in, instead of reading the body first
    (services/common/gunicorn_worker.py). Such a view must hold a place (UPLOADS_MAX) while it reads."""
    # the mark is a plain function attribute (gunicorn_worker reads it with getattr); Callable's type
    # declares no attributes, the function's __dict__ takes any
    view.__dict__["streams_body"] = True
    return view


def create_base_app(service: str, readiness_checks: dict[str, Callable[[], None]]) -> Flask:
    """A Flask app with telemetry, JSON errors, RED metrics, /healthz and /readyz.

    /metrics is not here: it is served on a port of its own (metrics_http, started by the gunicorn config),
    so that the public port never shows the service's internals."""
    config.validate()
    telemetry.init_telemetry(service)
    app = Flask(service)
    app.config["SERVICE"] = service
    # Flask's default provider (the app sets no other); sort_keys is its setting, not JSONProvider's
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.sort_keys = False

    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument_app(app, excluded_urls=telemetry.flask_excluded_urls())
    # ahead of the instrumentation's hook, which starts the server span: the sampler needs to know whether
    # the request is conditional (services/common/sampling.py)
    app.before_request_funcs.setdefault(None, []).insert(0, lambda: sampling.note_request(request.environ))

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _record(response: Response):
        rule, method = route_label(), method_label(request.method)
        if rule not in ("/healthz", "/readyz"):
            elapsed = time.perf_counter() - g.get("started", time.perf_counter())
            HTTP_REQUESTS.labels(service, method, rule, str(response.status_code)).inc()
            HTTP_DURATION.labels(service, method, rule).observe(elapsed, exemplar=metrics.exemplar())
        ratelimit.add_headers(response)
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        # the exception's own headers (Allow, Content-Range, WWW-Authenticate) but not its HTML Content-Type
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        return error_response(status, _HTTP_CODES.get(status, "http_error"), exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Never a stack trace to the client; the trace id lets an operator find the logged one.
        log.exception("unhandled error", extra={"path": request.path})
        from opentelemetry import trace

        telemetry.record_error(trace.get_current_span(), exc)
        return error_response(500, "internal_error", f"internal error (trace {telemetry.current_trace_id()})")

    app.register_blueprint(health_blueprint(readiness_checks))
    app.register_blueprint(problems_blueprint())
    return app


def health_blueprint(readiness_checks: dict[str, Callable[[], None]]) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz():
        # Liveness: the process answers. Dependencies are readiness' business, so an outage
        # elsewhere never gets healthy pods restarted. The version tells a rollout's pods apart.
        return jsonify({"status": "ok", "version": release.version()})

    @bp.get("/readyz")
    def readyz():
        results, ok = check_all(readiness_checks)
        body = {"status": "ok" if ok else "unavailable", "checks": results}
        # not an error of the API (a probe's answer), but a 503 like every other: it says when to look again
        return jsonify(body), (200 if ok else 503), ({} if ok else problems.headers(503))

    return bp


PROBLEMS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body><main><h1>{title}</h1>{content}</main></body></html>
"""


def problems_blueprint() -> Blueprint:
    """The pages the problem types (/problems/<code>) point to: what each error code means."""
    bp = Blueprint("problems", __name__)

    @bp.get("/problems/")
    def problem_types():
        items = "".join(f'<li id="{code}"><a href="{problems.type_uri(code)}"><code>{code}</code></a>: '
                        f"{escape(title)}. {escape(text)}</li>" for code, (title, text) in problems.CODES.items())
        return _page("Error codes of the vid2mp3 API",
                     "<p>Errors are RFC 9457 problem details (application/problem+json); their "
                     "<code>type</code> is one of these pages and <code>code</code> the name below.</p>"
                     f"<ul>{items}</ul>")

    @bp.get("/problems/<code>")
    def problem_type(code: str):
        if code not in problems.CODES:
            abort(404)
        title, text = problems.CODES[code]
        return _page(f"{title} ({code})", f'<p>{escape(text)}</p><p><a href="{problems.TYPE_BASE}">All error codes'
                                          "</a></p>")

    return bp


def _page(title: str, content: str) -> Response:
    return Response(PROBLEMS_PAGE.format(title=escape(title), content=content), mimetype="text/html",
                    headers={"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                             "Cache-Control": "public, max-age=3600"})


def check_all(checks: dict[str, Callable[[], None]]) -> tuple[dict[str, str], bool]:
    results, ok = {}, True
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            ok = False
            results[name] = f"failing: {type(exc).__name__}"
    return results, ok


def json_body(max_bytes: int = 64 * 1024) -> dict:
    """The request's JSON object, or a 400/413/415 ApiError explaining what is wrong with it."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"JSON body larger than {max_bytes} bytes")
    raw = request.stream.read(max_bytes + 1)  # bounded even for chunked bodies without a length
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"JSON body larger than {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    return data
