"""POST /me/webhook-secret: replace the caller's webhook signing secret (shown by GET /me).

`webhook_secret_of(owner)` is what GET /me shows (created on first look, like on first delivery).
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from services.common.webhook_secrets import rotate, webhook_secret_of

from . import auth_client

__all__ = ["bp", "webhook_secret_of"]
log = logging.getLogger(__name__)
bp = Blueprint("webhook_account", __name__)


@bp.post("/me/webhook-secret")
def rotate_webhook_secret():
    """A new secret; webhooks are signed with it from the next attempt on."""
    user = auth_client.current_user()
    secret = rotate(user["sub"])
    log.info("webhook secret rotated", extra={"owner": user["sub"]})
    return jsonify({"webhook_secret": secret})
