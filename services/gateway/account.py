"""The caller's own account as the gateway sees it: who they are, what they use, what they may use,
the secret their webhooks are signed with, their output presets, and their API keys (kept by auth)."""
from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request

from services.common import presets
from services.common.web import ApiError, json_body
from services.common.webhook_secrets import rotate, webhook_secret_of

from . import auth_client, quotas

log = logging.getLogger(__name__)
bp = Blueprint("account", __name__)
MAX_BODY = 4096  # a key's name, scope and expiry; a preset's option fields


@bp.get("/me")
def me():
    """The caller's email, usage, limits (null for admins: they are exempt) and webhook secret."""
    user = auth_client.current_user()
    return jsonify({"email": user.get("email"), "admin": bool(user.get("admin")), **quotas.overview(user),
                    "webhook_secret": webhook_secret_of(user["sub"])})


@bp.post("/me/webhook-secret")
def rotate_webhook_secret():
    """A new secret; webhooks are signed with it from the next attempt on (the old one stops at once)."""
    user = auth_client.current_user()
    secret = rotate(user["sub"])
    log.info("webhook secret rotated", extra={"owner": user["sub"]})
    return jsonify({"webhook_secret": secret})


# Output presets: the built-in ones and the caller's own (a read API key may only read them: auth_client
# refuses its other methods with 403 read_only_key).
@bp.get("/me/presets")
def list_presets():
    """The built-in presets, then the caller's own by name: name, builtin, description, fields."""
    user = auth_client.current_user()
    return jsonify({"presets": presets.all_of(user["sub"])})


@bp.get("/me/presets/<name>")
def get_preset(name: str):
    """One preset: built in or the caller's (another user's is 404)."""
    return jsonify(presets.one_of(auth_client.current_user()["sub"], name))


@bp.put("/me/presets/<name>")
def put_preset(name: str):
    """Store or replace one of the caller's presets: a JSON object of option fields, checked like an upload's."""
    user = auth_client.current_user()
    shown, created = presets.put(user["sub"], name, json_body(MAX_BODY))
    log.info("preset saved", extra={"owner": user["sub"], "preset": name, "new": created})
    return jsonify(shown), 201 if created else 200


@bp.delete("/me/presets/<name>")
def delete_preset(name: str):
    """Forget one of the caller's presets (uploads that named it keep their resolved options)."""
    user = auth_client.current_user()
    presets.delete(user["sub"], name)
    log.info("preset deleted", extra={"owner": user["sub"], "preset": name})
    return "", 204


# API keys: auth owns them; these routes forward the caller's Authorization header, and auth checks it
# itself (a JWT or a full key may change keys, a read key may only list them: 403 read_only_key).
def _to_auth(path: str, body: bytes | None = None) -> Response:
    headers = {"Authorization": request.headers.get("Authorization", "")}
    if body is not None:
        headers["Content-Type"] = request.headers.get("Content-Type", "")
    return auth_client.relay(path, headers, body, request.method)


@bp.get("/me/api-keys")
def list_api_keys():
    """The caller's API keys (id, name, prefix, scope, times): never a secret."""
    return _to_auth("/api-keys")


@bp.post("/me/api-keys")
def create_api_key():
    """A new API key of the caller's; the answer is the only time the key is shown."""
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ApiError(413, "payload_too_large", "JSON body too large")
    return _to_auth("/api-keys", body)


@bp.delete("/me/api-keys/<key_id>")
def revoke_api_key(key_id: str):
    """Revoke one of the caller's API keys: refused from the next request on, on every gateway."""
    return _to_auth(f"/api-keys/{quote(key_id, safe='')}")
