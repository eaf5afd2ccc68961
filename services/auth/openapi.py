"""OpenAPI 3.1 description of the auth service (internal: the gateway calls it), at /openapi.json."""
from __future__ import annotations

from services.common.openapi import LIVENESS, LOGIN, OPENAPI_VERSION, PROBLEM_PATHS, REGISTER, SCHEMAS, \
    SECURITY_SCHEMES, readiness

# Set by the gateway; the per-address limits of registrations and failed logins count by it.
CLIENT_ADDRESS = {"name": "X-Client-Address", "in": "header", "required": False,
                  "description": "the end user's address, set by the gateway (per-address limits)",
                  "schema": {"type": "string"}}

SPEC = {
    "openapi": OPENAPI_VERSION,
    "info": {"title": "vid2mp3 auth", "version": "1.0.0",
             "description": "Accounts and JWTs (EdDSA). Internal: users reach it through the gateway, "
                            "which fetches the public keys to verify tokens itself."},
    "components": {
        "securitySchemes": SECURITY_SCHEMES,
        "schemas": {
            **SCHEMAS,
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
        "/healthz": LIVENESS,
        "/readyz": readiness("MySQL"),
        **PROBLEM_PATHS,
    },
}
