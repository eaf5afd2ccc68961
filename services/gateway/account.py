"""The caller's own account as the gateway sees it: who they are, what they use, what they may use,
and the secret their webhooks are signed with."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from services.common.webhook_secrets import rotate, webhook_secret_of

from . import auth_client, quotas

log = logging.getLogger(__name__)
bp = Blueprint("account", __name__)


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
