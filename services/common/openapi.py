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
_MEANINGS = {400: "Bad input", 401: "Missing, invalid or expired credentials", 404: "No such job or file",
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
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
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
