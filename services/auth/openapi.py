"""OpenAPI 3 description of the auth service (internal: the gateway calls it), at /openapi.json."""
from __future__ import annotations

from services.common import release
from services.common.openapi import ERROR_SCHEMA, LOGIN, REGISTER, SECURITY_SCHEMES

# Set by the gateway; the per-address limits of registrations and failed logins count by it.
CLIENT_ADDRESS = {"name": "X-Client-Address", "in": "header", "required": False,
                  "description": "the end user's address, set by the gateway (per-address limits)",
                  "schema": {"type": "string"}}

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "vid2mp3 auth", "version": release.version(),
             "description": "Accounts and JWTs (EdDSA). Internal: users reach it through the gateway, "
                            "which fetches the public keys to verify tokens itself."},
    "components": {
        "securitySchemes": SECURITY_SCHEMES,
        "schemas": {
            "Error": ERROR_SCHEMA,
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
            "summary": "The public keys that verify tokens "
                       "(RFC 7517 JWK Set; Ed25519, EdDSA, kid = RFC 7638 thumbprint)",
            "responses": {"200": {"description": "JWK Set", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/JWKS"}}}}},
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness (MySQL)",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
    },
}
