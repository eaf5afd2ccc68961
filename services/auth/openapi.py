"""OpenAPI 3.1 description of the auth service (internal: the gateway calls it), at /openapi.json."""
from __future__ import annotations

from services.common import release
from services.common.openapi import API_KEY_SCHEMAS, CREATE_API_KEY, LIST_API_KEYS, LIVENESS, LOGIN, OPENAPI_VERSION, \
    PROBLEM_PATHS, REGISTER, REVOKE_API_KEY, SCHEMAS, SECURITY_SCHEMES, errors, problem, readiness

# Set by the gateway; the per-address limits of registrations and failed logins count by it.
CLIENT_ADDRESS = {"name": "X-Client-Address", "in": "header", "required": False,
                  "description": "the end user's address, set by the gateway (per-address limits)",
                  "schema": {"type": "string"}}

SPEC = {
    "openapi": OPENAPI_VERSION,
    "info": {"title": "vid2mp3 auth", "version": release.version(),
             "description": "Accounts and JWTs (EdDSA). Internal: users reach it through the gateway, "
                            "which fetches the public keys to verify tokens itself."},
    "components": {
        "securitySchemes": SECURITY_SCHEMES,
        "schemas": {
            **SCHEMAS,
            **API_KEY_SCHEMAS,
            "JWKS": {
                "type": "object", "required": ["keys"],
                "properties": {"keys": {"type": "array", "items": {
                    "type": "object", "required": ["kty", "crv", "x", "kid", "alg", "use"],
                    "properties": {"kty": {"type": "string", "enum": ["OKP"]},
                                   "crv": {"type": "string", "enum": ["Ed25519"]},
                                   "x": {"type": "string"}, "kid": {"type": "string"},
                                   "alg": {"type": "string", "enum": ["EdDSA"]},
                                   "use": {"type": "string", "enum": ["sig"]}},
                }}},
            },
        },
    },
    "paths": {
        "/register": {"post": {**REGISTER, "parameters": [CLIENT_ADDRESS]}},
        "/login": {"post": {**LOGIN, "parameters": [CLIENT_ADDRESS]}},
        "/.well-known/jwks.json": {"get": {
            "operationId": "getJwks", "tags": ["tokens"],
            "summary": "The public keys that verify tokens "
                       "(RFC 7517 JWK Set; Ed25519, EdDSA, kid = RFC 7638 thumbprint)",
            "responses": {"200": {"description": "JWK Set", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/JWKS"}}}}},
        }},
        "/api-keys": {"get": LIST_API_KEYS, "post": CREATE_API_KEY},
        "/api-keys/{key_id}": {"delete": REVOKE_API_KEY},
        "/api-keys/verify": {"post": {
            "summary": "Who an API key speaks for (the gateway asks on every request made with a key)",
            "description": "The key goes in the body, never in a URL. Nothing caches the answer, so a revoked key "
                           "is refused from the next request on, on every gateway.",
            "operationId": "verifyApiKey", "tags": ["api-keys"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}}}},
            "responses": {"200": {"description": "The claims, as a token's, plus the key's id and scope", "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["sub", "email", "admin", "api_key"],
                    "properties": {"sub": {"type": "string"}, "email": {"type": "string"}, "admin": {"type": "boolean"},
                                   "api_key": {"type": "object", "required": ["id", "scope"], "properties": {
                                       "id": {"type": "string"},
                                       "scope": {"type": "string", "enum": ["read", "full"]}}}}}}}},
                "401": problem("invalid_api_key: unknown, revoked, expired or malformed"),
                **errors(400, 413, 415, 503)},
        }},
        "/healthz": LIVENESS,
        "/readyz": readiness("MySQL"),
        **PROBLEM_PATHS,
    },
}
