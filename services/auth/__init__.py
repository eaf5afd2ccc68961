"""auth: users in MySQL, argon2id password hashes, HS256 JWTs."""
from __future__ import annotations

import base64

import pymysql
from flask import Blueprint, Response, jsonify, request

from services.common import openapi as api_docs
from services.common.web import ApiError, create_base_app, error_response, json_body

from . import accounts, db, limits, metrics, openapi, tokens

bp = Blueprint("auth", __name__)


def basic_credentials() -> tuple[str, str]:
    """(email, password) from HTTP Basic, or a 401 ApiError."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise ApiError(401, "missing_credentials", "send the email and password with HTTP Basic (curl -u)",
                       {"WWW-Authenticate": 'Basic realm="vid2mp3"'})
    try:
        email, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise ApiError(401, "invalid_credentials", "malformed Basic credentials",
                       {"WWW-Authenticate": 'Basic realm="vid2mp3"'})
    return email, password


def bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_token", "send a token in the header Authorization: Bearer TOKEN")
    return token.strip()


def client_address() -> str:
    # auth is internal: only the gateway reaches it (NetworkPolicy), and the gateway always sets this
    # header to the user's address; without it the caller itself is the client.
    return request.headers.get("X-Client-Address") or request.remote_addr or "unknown"


@bp.post("/register")
def register():
    # Every attempt counts (each valid one costs an argon2 hash), before the body is even read.
    retry_after = limits.take(limits.registration_key(client_address()))
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
    metrics.REGISTRATIONS.labels("created").inc()
    return jsonify({"id": str(user["id"]), "email": user["email"]}), 201


@bp.post("/login")
def login():
    email, password = basic_credentials()
    keys = limits.keys_for(email, client_address())
    retry_after = limits.blocked_for(keys)
    if retry_after:
        metrics.LOGINS.labels("rate_limited").inc()
        raise ApiError(429, "too_many_attempts", "too many failed logins; try again later",
                       {"Retry-After": str(retry_after)})
    user = accounts.authenticate(email, password)
    if user is None:
        limits.record(keys)
        metrics.LOGINS.labels("bad_credentials").inc()
        raise ApiError(401, "invalid_credentials", "wrong email or password",
                       {"WWW-Authenticate": 'Basic realm="vid2mp3"'})
    limits.clear(limits.keys_for(email, None))
    metrics.LOGINS.labels("success").inc()
    return Response(tokens.issue(user), mimetype="text/plain")


@bp.post("/validate")
def validate():
    try:
        claims = tokens.validate(bearer_token())
    except tokens.TokenError as exc:
        metrics.TOKEN_VALIDATIONS.labels("invalid").inc()
        raise ApiError(401, exc.code, str(exc)) from None
    metrics.TOKEN_VALIDATIONS.labels("valid").inc()
    return jsonify(claims)


def create_app():
    tokens.signing_key()  # refuse to start without a usable secret
    app = create_base_app("auth", {"mysql": db.ping})
    app.register_blueprint(bp)
    api_docs.register(app, openapi.SPEC)

    @app.errorhandler(pymysql.err.MySQLError)
    def _database_down(exc):
        return error_response(503, "database_unavailable", "the user database is unavailable; try again shortly",
                              {"Retry-After": "5"})

    return app
