"""auth's routes: registration, login (HTTP Basic to a token) and token validation."""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, jsonify, request

from services.common import ratelimit
from services.common.web import ApiError, json_body

from . import accounts, db, hashing, limits, metrics, tokens

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="vid2mp3"'}


def basic_credentials() -> tuple[str, str]:
    """(email, password) from HTTP Basic, or a 401 ApiError."""
    credentials = request.authorization
    if credentials is None and request.headers.get("Authorization"):
        # werkzeug answers None for a Basic value that is not base64 of UTF-8 text.
        raise ApiError(401, "invalid_credentials", "malformed Basic credentials", BASIC_CHALLENGE)
    if credentials is None or credentials.type != "basic" or not (credentials.username or credentials.password):
        raise ApiError(401, "missing_credentials", "send the email and password with HTTP Basic (curl -u)",
                       BASIC_CHALLENGE)
    if not credentials.password:
        # No colon in the value, or nothing after it: no account has an empty password.
        raise ApiError(401, "invalid_credentials", "malformed Basic credentials", BASIC_CHALLENGE)
    return credentials.username, credentials.password


def client_address() -> str:
    """The user's address: the gateway's X-Client-Address, else the caller's own."""
    # auth is internal: only the gateway reaches it (NetworkPolicy), and the gateway always sets this
    # header to the user's address; without it the caller itself is the client.
    return request.headers.get("X-Client-Address") or request.remote_addr or "unknown"


@bp.post("/register")
def register():
    """Create an account from a JSON email and password."""
    # Every attempt counts (each valid one costs an argon2 hash), before the body is even read.
    counted = limits.take(limits.registration_key(client_address()), "register")
    ratelimit.report(counted.standing())
    retry_after = counted.wait
    if retry_after:
        metrics.REGISTRATIONS.labels("rate_limited").inc()
        raise ApiError(429, "too_many_registrations", "too many registrations from your address; try again later",
                       {"Retry-After": str(retry_after)})
    data = json_body()
    try:
        user = accounts.register(data.get("email"), data.get("password"))
    except accounts.InvalidAccount as exc:
        metrics.REGISTRATIONS.labels("invalid").inc()
        raise ApiError(400, exc.code, str(exc)) from None
    except db.DuplicateEmail:
        metrics.REGISTRATIONS.labels("duplicate").inc()
        raise ApiError(409, "email_taken", "an account with this email exists") from None
    except hashing.TooBusy as exc:
        metrics.REGISTRATIONS.labels("too_busy").inc()
        raise _too_busy(exc) from None
    metrics.REGISTRATIONS.labels("created").inc()
    return jsonify({"id": str(user["id"]), "email": user["email"]}), 201


def _too_busy(exc: hashing.TooBusy) -> ApiError:
    return ApiError(503, "too_busy", "auth is checking as many passwords as it can; try again shortly",
                    {"Retry-After": str(exc.retry_after)})


@bp.post("/login")
def login():
    """Exchange HTTP Basic credentials for a token."""
    email, password = basic_credentials()
    attempt = limits.LoginAttempt(accounts.login_email(email), client_address())
    retry_after = attempt.take()  # counted before the hash, so parallel guesses cannot pass the limit
    ratelimit.report(*attempt.standings())
    if retry_after:
        metrics.LOGINS.labels("rate_limited").inc()
        raise ApiError(429, "too_many_attempts", "too many failed logins; try again later",
                       {"Retry-After": str(retry_after)})
    _slow_down(attempt.slowdown())
    try:
        user = accounts.authenticate(email, password)
    except hashing.TooBusy as exc:
        attempt.not_checked()
        ratelimit.report(*attempt.standings())
        metrics.LOGINS.labels("too_busy").inc()
        raise _too_busy(exc) from None
    if user is None:
        metrics.LOGINS.labels("bad_credentials").inc()
        raise ApiError(401, "invalid_credentials", "wrong email or password", BASIC_CHALLENGE)
    attempt.succeeded()
    ratelimit.report(*attempt.standings())
    metrics.LOGINS.labels("success").inc()
    return Response(tokens.issue(user), mimetype="text/plain")


def _slow_down(seconds: float) -> None:
    """Delay a login of an account that failed often from anywhere (never refuse it: that would let
    anyone lock its owner out). The wait holds no hashing place, so it costs no memory."""
    if seconds:
        metrics.LOGIN_SLOWDOWNS.inc()
        log.info("login slowed down by %.2f s: its account failed more than LOGIN_MAX_FAILURES times "
                 "in the window, from any address", seconds)
        time.sleep(seconds)


@bp.get("/.well-known/jwks.json")
def jwks():
    """The public keys that verify tokens; the gateway caches them and verifies tokens itself."""
    response = jsonify(tokens.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
