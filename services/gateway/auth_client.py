"""Calls from the gateway to the auth service (one pooled HTTP session per process), and the check of
Bearer tokens, which needs no call: the gateway verifies them with auth's cached public keys (jwks.py)."""
from __future__ import annotations

import requests
from flask import Response, request
from opentelemetry import trace

from services.common import config, telemetry, tokens
from services.common.web import ApiError

from . import jwks, metrics, verified

_session = requests.Session()
_tracer = telemetry.tracer(__name__)
_FORWARDED_HEADERS = ("Content-Type", "WWW-Authenticate", "Retry-After", "RateLimit-Policy", "RateLimit")


def _call(path: str, headers: dict, body: bytes | None = None) -> requests.Response:
    # Always set here, never passed on from the client: auth's per-address limits count by it.
    headers = dict(headers, **{"X-Client-Address": request.remote_addr or "unknown"})
    try:
        return _session.post(config.env("AUTH_URL").rstrip("/") + path, data=body, headers=headers,
                             timeout=config.env_float("UPSTREAM_TIMEOUT_SECONDS"))
    except requests.RequestException:
        raise ApiError(503, "auth_unavailable", "the auth service is unavailable; try again shortly",
                       {"Retry-After": "5"}) from None


def relay(path: str, headers: dict, body: bytes | None = None) -> Response:
    """Forward a call to auth and answer with its status, body and relevant headers."""
    upstream = _call(path, headers, body)
    if upstream.status_code >= 500 and not _too_busy(upstream):
        raise ApiError(503, "auth_unavailable", "the auth service could not answer; try again shortly",
                       {"Retry-After": "5"})
    response = Response(upstream.content, status=upstream.status_code)
    for name in _FORWARDED_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    return response


def _too_busy(upstream: requests.Response) -> bool:
    """auth's 503 too_busy (every password hashing place taken): relayed as it is, with its Retry-After."""
    if upstream.status_code != 503 or "json" not in upstream.headers.get("Content-Type", ""):
        return False
    try:
        return upstream.json()["error"]["code"] == "too_busy"
    except (ValueError, KeyError, TypeError):
        return False


def current_user() -> dict:
    """The claims of the request's Bearer token, verified here with auth's cached public keys; a 401
    ApiError for any token that does not verify, a 503 only while no key was ever fetched. A "verify
    token" span shows each real verification; a token already verified by this process is a cache hit."""
    credentials = request.authorization
    if credentials is None or credentials.type != "bearer" or not credentials.token:
        raise ApiError(401, "missing_token", "send a token in the header Authorization: Bearer TOKEN")
    claims = verified.cached(credentials.token)
    if claims is not None:
        # A token this process verified before: a dictionary look-up, no span of its own (a span costs
        # more than the look-up); the outcome goes on the request's span and into the metric.
        span = trace.get_current_span()
        span.set_attribute("vid2mp3.token.cached", True)
        _outcome(span, "valid")
        return claims
    with _tracer.start_as_current_span("verify token") as span:
        try:
            claims = verified.verify(credentials.token)
        except tokens.TokenError as exc:
            _outcome(span, "invalid")
            raise ApiError(401, exc.code, str(exc)) from None
        except jwks.KeysUnavailable:
            _outcome(span, "keys_unavailable")
            raise ApiError(503, "auth_unavailable", "the token cannot be checked yet: auth's keys are unavailable; "
                           "try again shortly", {"Retry-After": "5"}) from None
        _outcome(span, "valid")
        return claims


def _outcome(span, result: str) -> None:
    metrics.TOKEN_VERIFICATIONS.labels(result).inc()
    span.set_attribute("vid2mp3.token.result", result)


def ping() -> None:
    response = _session.get(config.env("AUTH_URL").rstrip("/") + "/readyz", timeout=2)
    response.raise_for_status()
