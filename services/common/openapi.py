"""What the OpenAPI 3.1 descriptions of the HTTP services share: the error body (Problem), the error
responses, the pages of the problem types, and serving a spec at /openapi.json with Swagger UI at /docs.

Every operation has an operationId (camelCase, unique: a generated client's method name) and tags;
every error response is application/problem+json with the Problem schema (tests/unit/test_openapi.py)."""
from __future__ import annotations

import copy

from flask import Flask, jsonify

OPENAPI_VERSION = "3.1.0"
ERROR = {"$ref": "#/components/schemas/Error"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}
ERROR_SCHEMA: dict = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "description": "stable machine-readable code"},
        "message": {"type": "string", "description": "human-readable explanation"}}}},
}
# RFC 9457 problem details with our code, and the older error object kept beside them
PROBLEM_SCHEMA = {
    "type": "object", "required": ["type", "title", "status", "detail", "code", "error"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference",
                 "description": "/problems/{code}: a page that explains the code"},
        "title": {"type": "string", "description": "the same for every occurrence of the code"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string", "description": "what happened this time (as error.message)"},
        "instance": {"type": "string", "description": "the request's path"},
        "code": {"type": "string", "description": "stable machine-readable code (as error.code)"},
        "error": ERROR_SCHEMA["properties"]["error"]},  # as in Error, the body every client read before
}
SCHEMAS = {"Problem": PROBLEM_SCHEMA, "Error": ERROR_SCHEMA}
PROBLEM_BODY = {"application/problem+json": {"schema": PROBLEM}}
_MEANINGS = {400: "Bad input", 401: "Missing, invalid or expired credentials (a token or an API key)",
             403: "read_only_key: a read-only API key may only read (GET, HEAD); this request changes something",
             404: "No such job or file",
             409: "Conflict", 410: "Gone: removed after its retention period (or an upload that expired unfinished)",
             412: "Precondition failed: a tus request without Tus-Resumable: 1.0.0", 413: "Body too large",
             415: "Wrong content type", 416: "Range not satisfiable",
             423: "Locked: another request is writing this upload; retry after Retry-After seconds",
             429: "Too many attempts from this client or for this account; wait Retry-After seconds",
             503: "A dependency is unavailable; retry later",
             414: "Request line longer than 8190 bytes (answered by the HTTP server)"}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying"}}
# draft-ietf-httpapi-ratelimit-headers-10 (services/common/ratelimit.py)
RATE_LIMIT = {
    "RateLimit-Policy": {"schema": {"type": "string"}, "description": 'the limits, e.g. "register";q=10;w=3600'},
    "RateLimit": {"schema": {"type": "string"}, "description": 'what is left, e.g. "register";r=7;t=1800'}}


def problem(description: str, headers: dict | None = None) -> dict:
    """One error response: problem details (with Retry-After on a 429 or 503: they always carry it)."""
    response = {"description": description, "content": PROBLEM_BODY}
    if headers:
        response["headers"] = headers
    return response


def errors(*statuses: int) -> dict:
    """OpenAPI responses for these error statuses, all with the problem details body."""
    return {str(s): problem(_MEANINGS[s], RETRY_AFTER if s in (429, 503) else None) for s in statuses}


# gunicorn refuses a request line over 8190 bytes (limit_request_line) before any application code runs
URI_TOO_LONG = errors(414)


SECURITY_SCHEMES = {
    "basic": {"type": "http", "scheme": "basic"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API key",
               "description": "either the JWT that POST /login answers, or a personal API key (v2m_…, made with "
                              "POST /me/api-keys; a read key may only make GET and HEAD requests)"},
}
# Personal API keys: auth serves these operations at /api-keys and the gateway forwards /me/api-keys to it.
_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
API_KEY_SCHEMA = {
    "type": "object", "required": ["id", "name", "prefix", "scope", "created_at", "last_used_at", "expires_at",
                                   "expired"],
    "properties": {
        "id": {"type": "string", "description": "the key's public id (revoke with it)"},
        "name": {"type": "string"}, "prefix": {"type": "string", "description": "v2m_<id>: how the key starts"},
        "scope": {"type": "string", "enum": ["read", "full"]}, "created_at": _TIME,
        "last_used_at": {**_NULLABLE_TIME, "description": "recorded at most once a minute"},
        "expires_at": {**_NULLABLE_TIME, "description": "null: never"}, "expired": {"type": "boolean"}},
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
        "409": problem("too_many_api_keys: you hold API_KEYS_MAX_PER_USER keys; revoke one first")},
}
REVOKE_API_KEY = {
    "summary": "Revoke one of your API keys: refused from the next request on, by every gateway",
    "operationId": "revokeApiKey", "tags": ["api-keys"], "security": [{"bearer": []}], "parameters": [_KEY_ID],
    "responses": {"204": {"description": "Revoked"}, **errors(401, 403, 503),
                  "404": problem("No such API key of yours")},
}
# The account operations: auth serves them and the gateway forwards them unchanged.
REGISTER = {
    "operationId": "register", "tags": ["accounts"],
    "summary": "Create an account",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["email", "password"],
        "properties": {"email": {"type": "string", "format": "email", "maxLength": 254},
                       "password": {"type": "string", "minLength": 8, "maxLength": 256}}}}}},
    "responses": {"201": {"description": "Created", "headers": RATE_LIMIT, "content": {"application/json": {"schema": {
        "type": "object", "required": ["id", "email"],
        "properties": {"id": {"type": "string"}, "email": {"type": "string"}}}}}},
        **errors(400, 409, 413, 415, 503), "429": problem(_MEANINGS[429], {**RETRY_AFTER, **RATE_LIMIT})},
}
LOGIN = {
    "operationId": "login", "tags": ["accounts"],
    "summary": "Get a token (the body of the answer is the JWT)",
    "security": [{"basic": []}],
    "responses": {"200": {"description": "The JWT", "headers": RATE_LIMIT,
                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                  **errors(401, 503), "429": problem(_MEANINGS[429], {**RETRY_AFTER, **RATE_LIMIT})},
}
_HTML = {"text/html": {"schema": {"type": "string"}}}
# Served by both services (web.problems_blueprint): where each problem's `type` points.
PROBLEM_PATHS = {
    "/problems/": {"get": {"operationId": "listProblemTypes", "tags": ["docs"],
                           "summary": "The error codes of the API, each with what it means",
                           "responses": {"200": {"description": "The list", "content": _HTML}}}},
    "/problems/{code}": {"get": {
        "operationId": "getProblemType", "tags": ["docs"], "summary": "What one error code means",
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The page", "content": _HTML}, **errors(404)}}},
}
HEALTH_TAG = ["health"]
LIVENESS = {"get": {"operationId": "checkLiveness", "tags": HEALTH_TAG, "summary": "Liveness",
                    "responses": {"200": {"description": "alive"}}}}
# A probe's answer, not an API error: the checks by name, 503 (with Retry-After) while one fails.
_READINESS = {"application/json": {"schema": {"type": "object", "required": ["status", "checks"], "properties": {
    "status": {"type": "string", "enum": ["ok", "unavailable"]},
    "checks": {"type": "object", "additionalProperties": {"type": "string"}}}}}}
NOT_ERRORS = {("/readyz", "get", "503")}  # error statuses whose body is not a Problem (the probe's)


def readiness(dependencies: str) -> dict:
    return {"get": {"operationId": "checkReadiness", "tags": HEALTH_TAG, "summary": f"Readiness ({dependencies})",
                    "responses": {"200": {"description": "ready", "content": _READINESS},
                                  "503": {"description": "not ready", "headers": RETRY_AFTER,
                                          "content": _READINESS}}}}


def finished(spec: dict) -> dict:
    """The spec with what every operation can answer added (414 from the HTTP server)."""
    spec = copy.deepcopy(spec)
    for operations in spec["paths"].values():
        for method, operation in operations.items():
            too_long = URI_TOO_LONG["414"]
            # a HEAD answer has no body to describe
            operation["responses"]["414"] = {"description": too_long["description"]} if method == "head" else too_long
    return spec


def register(app: Flask, spec: dict) -> None:
    from flask_swagger_ui import get_swaggerui_blueprint

    served = finished(spec)

    @app.get("/openapi.json")
    def openapi_json():
        return jsonify(served)

    app.register_blueprint(get_swaggerui_blueprint(
        "/docs", "/openapi.json", config={"app_name": f"{spec['info']['title']} API"}))
