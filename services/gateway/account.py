"""The caller's own account as the gateway sees it: who they are, what they use, what they may use."""
from __future__ import annotations

from flask import Blueprint, jsonify

from . import auth_client, quotas

bp = Blueprint("account", __name__)


@bp.get("/me")
def me():
    """The caller's email, usage and limits (limits are null for admins: they are exempt)."""
    user = auth_client.current_user()
    return jsonify({"email": user.get("email"), "admin": bool(user.get("admin")), **quotas.overview(user)})
