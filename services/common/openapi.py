"""What the OpenAPI descriptions of the HTTP services share: the error body, the error responses,
and serving a spec at /openapi.json with Swagger UI at /docs."""
from __future__ import annotations

import copy

from flask import Flask, jsonify

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "description": "stable machine-readable code"},
        "message": {"type": "string", "description": "human-readable explanation"}}}},
}
_MEANINGS = {400: "Bad input", 401: "Missing, invalid or expired credentials (a token or an API key)",
             403: "read_only_key: a read-only API key may only read (GET, HEAD); this request changes something",
             404: "No such job or file",
             409: "Conflict", 410: "Gone: removed after its retention period (or an upload that expired unfinished)",
             412: "Precondition failed: a tus request without Tus-Resumable: 1.0.0", 413: "Body too large",
             415: "Wrong content type", 416: "Range not satisfiable",
             423: "Locked: another request is writing this upload; retry after Retry-After seconds",
             429: "Too many attempts from this client or for this account; wait Retry-After seconds",
             503: "A dependency is unavailable; retry later"}
# gunicorn refuses a request line over 8190 bytes (limit_request_line) before any application code runs
URI_TOO_LONG = {"414": {"description": "Request line longer than 8190 bytes (answered by the HTTP server)",
                        "content": {"text/html": {"schema": {"type": "string"}}}}}


def errors(*statuses: int) -> dict:
    """OpenAPI responses for these error statuses, all with the JSON error body."""
    return {str(s): {"description": _MEANINGS[s], "content": {"application/json": {"schema": ERROR}}}
            for s in statuses}


SECURITY_SCHEMES = {
    "basic": {"type": "http", "scheme": "basic"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API key",
               "description": "either the JWT that POST /login answers, or a personal API key (v2m_…, made with "
                              "POST /me/api-keys; a read key may only make GET and HEAD requests)"},
}
# Personal API keys: auth serves these operations at /api-keys and the gateway forwards /me/api-keys to it.
_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_TIME = {"type": "string", "format": "date-time"}
API_KEY_SCHEMA = {
    "type": "object", "required": ["id", "name", "prefix", "scope", "created_at", "last_used_at", "expires_at",
                                   "expired"],
    "properties": {
        "id": {"type": "string", "description": "the key's public id (revoke with it)"},
        "name": {"type": "string"}, "prefix": {"type": "string", "description": "v2m_<id>: how the key starts"},
        "scope": {"type": "string", "enum": ["read", "full"]}, "created_at": _TIME,
        "last_used_at": {**_TIME, "nullable": True, "description": "recorded at most once a minute"},
        "expires_at": {**_TIME, "nullable": True, "description": "null: never"}, "expired": {"type": "boolean"}},
}
NEW_API_KEY_SCHEMA = {"allOf": [{"$ref": "#/components/schemas/ApiKey"}, {
    "type": "object", "required": ["key"],
    "properties": {"key": {"type": "string", "pattern": "^v2m_",
                           "description": "the key: shown this once, never again (only its hash is kept)"}}}]}
API_KEY_SCHEMAS = {"ApiKey": API_KEY_SCHEMA, "NewApiKey": NEW_API_KEY_SCHEMA}
LIST_API_KEYS = {
    "summary": "Your API keys (never their secrets)", "operationId": "listApiKeys", "tags": ["api-keys"],
    "security": [{"bearer": []}],
    "responses": {"200": {"description": "Your keys, newest first", "content": {"application/json": {"schema": {
        "type": "object", "required": ["api_keys"],
        "properties": {"api_keys": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}}}}}}},
        **errors(401, 503)},
}
CREATE_API_KEY = {
    "summary": "Make an API key for a program (with a login token or a full key); the answer shows it once",
    "operationId": "createApiKey", "tags": ["api-keys"], "security": [{"bearer": []}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                       "scope": {"type": "string", "enum": ["read", "full"], "default": "full",
                                 "description": "read: GET and HEAD only"},
                       "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
                       "expires_at": {**_TIME, "description": "instead of expires_in_days; default: never"}}}}}},
    "responses": {"201": {"description": "The key, with its secret", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/NewApiKey"}}}},
        **errors(400, 401, 403, 413, 415, 503),
        "409": {"description": "too_many_api_keys: you hold API_KEYS_MAX_PER_USER keys; revoke one first",
                "content": {"application/json": {"schema": ERROR}}}},
}
REVOKE_API_KEY = {
    "summary": "Revoke one of your API keys: refused from the next request on, by every gateway",
    "operationId": "revokeApiKey", "tags": ["api-keys"], "security": [{"bearer": []}], "parameters": [_KEY_ID],
    "responses": {"204": {"description": "Revoked"}, **errors(401, 403, 503),
                  "404": {"description": "No such API key of yours", "content": {"application/json": {
                      "schema": ERROR}}}},
}
# The account operations: auth serves them and the gateway forwards them unchanged.
REGISTER = {
    "summary": "Create an account",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["email", "password"],
        "properties": {"email": {"type": "string", "format": "email", "maxLength": 254},
                       "password": {"type": "string", "minLength": 8, "maxLength": 256}}}}}},
    "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {
        "type": "object", "required": ["id", "email"],
        "properties": {"id": {"type": "string"}, "email": {"type": "string"}}}}}},
        **errors(400, 409, 413, 415, 429, 503)},
}
LOGIN = {
    "summary": "Get a token (the body of the answer is the JWT)",
    "security": [{"basic": []}],
    "responses": {"200": {"description": "The JWT", "content": {"text/plain": {"schema": {"type": "string"}}}},
                  **errors(401, 429, 503)},
}


def finished(spec: dict) -> dict:
    """The spec with what every operation can answer added (414 from the HTTP server)."""
    spec = copy.deepcopy(spec)
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation["responses"].update(URI_TOO_LONG)
    return spec


def register(app: Flask, spec: dict) -> None:
    from flask_swagger_ui import get_swaggerui_blueprint

    served = finished(spec)

    @app.get("/openapi.json")
    def openapi_json():
        return jsonify(served)

    app.register_blueprint(get_swaggerui_blueprint(
        "/docs", "/openapi.json", config={"app_name": f"{spec['info']['title']} API"}))
