"""API key rules that need no server: the key's format, what a scope allows, the create request's checks."""
from __future__ import annotations

import time

import pytest

from services.auth import api_keys
from services.common import tokens

KEY = "v2m_0123456789abcdef_" + "A1b2C3d4E5" * 4 + "xyz"


def test_key_format():
    assert tokens.parse_api_key(KEY) == ("0123456789abcdef", KEY.rsplit("_", 1)[1])
    for bad in ("v2m_", KEY + "x", KEY[:-1], KEY.replace("0123", "0X23"), KEY.replace("xyz", "xy-"), "v2m_" + "a" * 500,
                "eyJ.x.y", KEY + "\n"):
        assert tokens.parse_api_key(bad) is None, bad
    assert tokens.is_api_key(KEY) and not tokens.is_api_key("eyJhbGciOiJFZERTQSJ9.e30.c2ln")


@pytest.mark.parametrize("scope,method,allowed", [
    ("full", "POST", True), ("full", "DELETE", True), ("full", "GET", True),
    ("read", "GET", True), ("read", "HEAD", True), ("read", "POST", False), ("read", "PATCH", False),
    ("read", "DELETE", False), ("read", "PUT", False), ("admin", "GET", False),
])
def test_scope_allows(scope, method, allowed):
    assert tokens.scope_allows(scope, method) is allowed


def test_create_request_defaults():
    name, scope, expires = api_keys._parse({"name": " ci "})
    assert (name, scope, expires) == ("ci", "full", None)
    _, _, expires = api_keys._parse({"name": "ci", "expires_in_days": 2, "scope": "read"})
    assert expires == pytest.approx(time.time() + 2 * 86400, abs=5)
    _, _, expires = api_keys._parse({"name": "ci", "expires_at": "2030-01-01T00:00:00+01:00"})
    assert expires == 1893452400


@pytest.mark.parametrize("body,code", [
    ({"name": "n" * 101}, "invalid_name"), ({"name": "\ud800"}, "invalid_name"), ({"name": 5}, "invalid_name"),
    ({"name": "n", "hash": "x"}, "unknown_field"), ({"name": "n", "scope": None}, "invalid_scope"),
    ({"name": "n", "expires_in_days": True}, "invalid_expiry"),
    ({"name": "n", "expires_in_days": 3651}, "invalid_expiry"),
    ({"name": "n", "expires_at": 5}, "invalid_expiry"),
    ({"name": "n", "expires_at": "9999-01-01T00:00:00Z"}, "invalid_expiry"),
])
def test_create_request_refused(body, code):
    with pytest.raises(api_keys.InvalidKeyRequest) as refused:
        api_keys._parse(body)
    assert refused.value.code == code


def test_every_change_with_a_bearer_documents_the_read_key_refusal():
    from services.gateway.openapi import SPEC

    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            if {"bearer": []} in operation.get("security", []) and method.upper() not in tokens.SAFE_METHODS:
                assert "403" in operation["responses"], (method, path)
