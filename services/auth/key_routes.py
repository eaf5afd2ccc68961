"""auth's API key routes: the check the gateway asks for on every request made with a key, and a user's
own keys (list, create, revoke), which the gateway forwards from /me/api-keys with the caller's
Authorization header. auth checks that header itself (a JWT with its own key set, or a key)."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from services.common.tokens import READ_ONLY_MESSAGE, is_api_key, scope_allows
from services.common.web import ApiError, json_body

from . import api_keys, metrics, tokens

log = logging.getLogger(__name__)
bp = Blueprint("api_keys", __name__)
INVALID_KEY = ("invalid_api_key", "the API key is unknown, revoked, expired or malformed")


@bp.post("/api-keys/verify")
def verify():
    """Who a key speaks for ({"key"} in the body, never in a URL that could be logged): the claims the
    gateway uses, as a token's, plus the key's id and scope; 401 invalid_api_key. Asked on every request
    made with a key, so a revoked key stops at once on every gateway."""
    key = json_body(4096).get("key")
    principal = api_keys.verify(key) if isinstance(key, str) else None
    if principal is None:
        raise ApiError(401, *INVALID_KEY)
    return jsonify(principal.claims())


def _caller() -> int:
    """The user id of the request's Bearer credential (a token or a full key for a change; any for a read)."""
    credentials = request.authorization
    if credentials is None or credentials.type != "bearer" or not credentials.token:
        raise ApiError(401, "missing_token", "send a token in the header Authorization: Bearer TOKEN")
    if is_api_key(credentials.token):
        principal = api_keys.verify(credentials.token)
        if principal is None:
            raise ApiError(401, *INVALID_KEY)
        if not scope_allows(principal.scope, request.method):
            raise ApiError(403, "read_only_key", READ_ONLY_MESSAGE)
        return principal.user_id
    try:
        subject = tokens.validate(credentials.token)["sub"]
    except tokens.TokenError as exc:
        raise ApiError(401, exc.code, str(exc)) from None
    if not subject.isdigit():
        raise ApiError(401, "invalid_token", "the token names no user of this service")
    return int(subject)


@bp.get("/api-keys")
def list_keys():
    """The caller's keys: never the secret or its hash."""
    return jsonify({"api_keys": api_keys.list_keys(_caller())})


@bp.post("/api-keys")
def create_key():
    """A new key: the answer is the only time its secret is shown."""
    user_id = _caller()
    try:
        created = api_keys.create(user_id, json_body())
    except api_keys.InvalidKeyRequest as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    except api_keys.UnknownUser:
        raise ApiError(401, "invalid_token", "the token names no user of this service") from None
    except api_keys.TooManyKeys:
        raise ApiError(409, "too_many_api_keys", "you have as many API keys as you may (API_KEYS_MAX_PER_USER); "
                       "revoke one first") from None
    metrics.API_KEYS_CREATED.inc()
    log.info("api key created", extra={"owner": str(user_id), "api_key_id": created["id"], "scope": created["scope"]})
    return jsonify(created), 201


@bp.delete("/api-keys/<key_id>")
def revoke_key(key_id: str):
    """Revoke one of the caller's keys: refused from the next request on, on every gateway."""
    user_id = _caller()
    if not api_keys.revoke(user_id, key_id):
        raise ApiError(404, "not_found", "no such API key")
    metrics.API_KEYS_REVOKED.inc()
    log.info("api key revoked", extra={"owner": str(user_id), "api_key_id": key_id[:api_keys.ID_LENGTH]})
    return "", 204
