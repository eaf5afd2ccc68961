"""Calls from the gateway to the auth service (one pooled HTTP session per process), and the check of
Bearer credentials: a JWT needs no call (the gateway verifies it with auth's cached public keys, jwks.py);
an API key (`v2m_…`) is checked by auth on every request, over a kept-alive connection, so that a
revoked key stops at once on every gateway (nothing here remembers a key's validity)."""
from __future__ import annotations

from typing import NoReturn

import requests
from flask import Response, request
from opentelemetry import trace

from services.common import config, problems, telemetry, tokens
from services.common.web import ApiError

from . import jwks, metrics, verified

_session = requests.Session()
_tracer = telemetry.tracer(__name__)
_FORWARDED_HEADERS = ("Content-Type", "WWW-Authenticate", "Retry-After", "RateLimit-Policy", "RateLimit")


def _call(path: str, headers: dict, body: bytes | None = None, method: str = "POST") -> requests.Response:
    # Always set here, never passed on from the client: auth's per-address limits count by it.
    headers = dict(headers, **{"X-Client-Address": request.remote_addr or "unknown"})
    try:
        return _session.request(method, config.env("AUTH_URL").rstrip("/") + path, data=body, headers=headers,
                                timeout=config.env_float("UPSTREAM_TIMEOUT_SECONDS"))
    except requests.RequestException:
        raise ApiError(503, "auth_unavailable", "the auth service is unavailable; try again shortly",
                       {"Retry-After": "5"}) from None


def relay(path: str, headers: dict, body: bytes | None = None, method: str = "POST") -> Response:
    """Forward a call to auth and answer with its status, body and relevant headers."""
    upstream = _call(path, headers, body, method)
    if upstream.status_code >= 500 and not _too_busy(upstream):
        raise ApiError(503, "auth_unavailable", "the auth service could not answer; try again shortly",
                       {"Retry-After": "5"})
    response = Response(_own_instance(upstream), status=upstream.status_code)
    for name in _FORWARDED_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    return response


def _own_instance(upstream: requests.Response) -> bytes:
    """auth's body; a problem's `instance` made the path the client asked for (/me/api-keys/…), not auth's
    internal one (/api-keys/…)."""
    if upstream.headers.get("Content-Type", "").split(";")[0].strip() != problems.MEDIA_TYPE:
        return upstream.content
    try:
        problem = upstream.json()
    except ValueError:
        return upstream.content
    if not isinstance(problem, dict) or "instance" not in problem:
        return upstream.content
    problem["instance"] = request.path
    return problems.encode(problem)


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
    if tokens.is_api_key(credentials.token):
        return _key_user(credentials.token)
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


def still_valid() -> bool:
    """Whether the request's credential still holds (a long request, a live stream, asks again): False once
    a key is revoked or expired, or a token expired; True while auth cannot tell (its outage cuts nothing).
    The same checks as current_user's, without its span and metrics: a re-check is not a request."""
    token = request.authorization.token if request.authorization else ""
    try:
        if tokens.is_api_key(token):
            claims = _ask_auth(token)
            return claims is not None and tokens.scope_allows(claims["api_key"]["scope"], request.method)
        if verified.cached(token) is None:
            verified.verify(token)
    except tokens.TokenError:
        return False
    except (ApiError, jwks.KeysUnavailable):
        return True
    return True


def _key_user(key: str) -> dict:
    """The claims auth answers for an API key (as a token's, with `api_key`: its id and scope), checked
    now: 401 for a key auth refuses, 403 read_only_key for a read key on a request that changes state."""
    with _tracer.start_as_current_span("verify api key") as span:
        claims = _ask_auth(key) if tokens.parse_api_key(key) else None
        if claims is None:
            _key_outcome(span, "invalid")
            raise ApiError(401, "invalid_api_key", "the API key is unknown, revoked, expired or malformed")
        if not tokens.scope_allows(claims["api_key"]["scope"], request.method):
            _key_outcome(span, "read_only")
            raise ApiError(403, "read_only_key", tokens.READ_ONLY_MESSAGE)
        _key_outcome(span, "valid")
        return claims


def _ask_auth(key: str) -> dict | None:
    """auth's answer for the key: its claims, or None when auth refuses it; 503 when auth cannot answer.
    The key goes in the body, never in a URL (which spans and logs record)."""
    url = config.env("AUTH_URL").rstrip("/") + "/api-keys/verify"
    timeout = config.env_float("UPSTREAM_TIMEOUT_SECONDS")
    try:
        try:
            response = _session.post(url, json={"key": key}, timeout=timeout)
        except requests.ConnectionError as exc:
            if isinstance(exc, requests.Timeout):  # a connect timeout: auth is slow, not the connection stale
                raise
            # Once more, on a new connection: auth may have closed the kept-alive one as it was reused.
            response = _session.post(url, json={"key": key}, timeout=timeout)
    except requests.RequestException:
        _auth_down()
    if response.status_code == 401:
        return None
    if response.status_code != 200:
        _auth_down()
    return response.json()


def _auth_down() -> NoReturn:
    metrics.API_KEY_AUTHENTICATIONS.labels("auth_unavailable").inc()
    raise ApiError(503, "auth_unavailable", "the API key cannot be checked now: auth is unavailable; "
                   "try again shortly", {"Retry-After": "5"})


def _key_outcome(span, result: str) -> None:
    metrics.API_KEY_AUTHENTICATIONS.labels(result).inc()
    span.set_attribute("vid2mp3.api_key.result", result)


def _outcome(span, result: str) -> None:
    metrics.TOKEN_VERIFICATIONS.labels(result).inc()
    span.set_attribute("vid2mp3.token.result", result)


def ping() -> None:
    response = _session.get(config.env("AUTH_URL").rstrip("/") + "/readyz", timeout=2)
    response.raise_for_status()
