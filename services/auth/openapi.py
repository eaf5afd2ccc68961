"""OpenAPI 3 description of the auth service (internal: the gateway calls it), at /openapi.json."""
from __future__ import annotations

from services.common.openapi import ERROR_SCHEMA, LOGIN, REGISTER, SECURITY_SCHEMES, errors

# Set by the gateway; the per-address limits of registrations and failed logins count by it.
CLIENT_ADDRESS = {"name": "X-Client-Address", "in": "header", "required": False,
                  "description": "the end user's address, set by the gateway (per-address limits)",
                  "schema": {"type": "string"}}

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "vid2mp3 auth", "version": "1.0.0",
             "description": "Accounts and JWTs. Internal: users reach it through the gateway."},
    "components": {
        "securitySchemes": SECURITY_SCHEMES,
        "schemas": {
            "Error": ERROR_SCHEMA,
            "Claims": {
                "type": "object", "required": ["sub", "admin", "iat", "exp"],
                "properties": {"sub": {"type": "string"}, "email": {"type": "string"}, "admin": {"type": "boolean"},
                               "iat": {"type": "integer"}, "nbf": {"type": "integer"}, "exp": {"type": "integer"}},
            },
        },
    },
    "paths": {
        "/register": {"post": {**REGISTER, "parameters": [CLIENT_ADDRESS]}},
        "/login": {"post": {**LOGIN, "parameters": [CLIENT_ADDRESS]}},
        "/validate": {"post": {
            "summary": "The claims of a valid token",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "Valid token", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Claims"}}}}, **errors(401)},
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness (MySQL)",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
    },
}
