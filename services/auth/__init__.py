"""auth: users in MySQL, argon2id password hashes, EdDSA JWTs with their public keys at /.well-known/jwks.json."""
from __future__ import annotations

import pymysql

from services.common import openapi as api_docs
from services.common.web import create_base_app, error_response

from . import db, hashing, key_routes, openapi, tokens
from .routes import bp


def create_app():
    tokens.keys()  # refuse to start without a usable signing key
    hashing.dummy_hash()  # made now, not during the first login of an unknown user (it would cost 2 hashes)
    app = create_base_app("auth", {"mysql": db.ping})
    app.register_blueprint(bp)
    app.register_blueprint(key_routes.bp)
    api_docs.register(app, openapi.SPEC)
    app.register_error_handler(pymysql.err.MySQLError, _database_down)
    return app


def _database_down(exc):
    return error_response(503, "database_unavailable", "the user database is unavailable; try again shortly",
                          {"Retry-After": "5"})
