"""OpenAPI 3 description of the auth service (internal: the gateway calls it), at /openapi.json."""
from __future__ import annotations

from services.common.openapi import ERROR_SCHEMA, errors

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "vid2mp3 auth", "version": "1.0.0",
             "description": "Accounts and JWTs. Internal: users reach it through the gateway."},
    "components": {
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        },
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
        "/register": {"post": {
            "summary": "Create an account",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["email", "password"],
                "properties": {"email": {"type": "string", "format": "email", "maxLength": 254},
                               "password": {"type": "string", "minLength": 8, "maxLength": 256}}}}}},
            "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {
                "type": "object", "required": ["id", "email"],
                "properties": {"id": {"type": "string"}, "email": {"type": "string"}}}}}},
                **errors(400, 409, 413, 415, 503)},
        }},
        "/login": {"post": {
            "summary": "Get a token (the body of the answer is the JWT)",
            "security": [{"basic": []}],
            "parameters": [{"name": "X-Client-Address", "in": "header", "required": False,
                            "description": "the end user's address, set by the gateway (per-address login limit)",
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The JWT", "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **errors(401, 429, 503)},
        }},
        "/validate": {"post": {
            "summary": "The claims of a valid token",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "Valid token", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Claims"}}}}, **errors(401)},
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness (MySQL)",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}},
    },
}
