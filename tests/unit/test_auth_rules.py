"""Account rules and token handling (pure logic)."""
from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.auth import accounts, tokens
from tests.support.keys import b64url, hmac_token, new_private_pem, public_pem


@pytest.mark.parametrize("email", ["a@b.co", "First.Last+tag@sub.example.org", " MIXED@Example.COM "])
def test_valid_emails_are_normalised(email):
    assert accounts.normalise_email(email) == email.strip().lower()


@pytest.mark.parametrize("email", ["", "no-at", "a@b", "a@-b.com", "a b@c.com", "x" * 65 + "@b.com", None, 5])
def test_invalid_emails(email):
    with pytest.raises(accounts.InvalidAccount):
        accounts.normalise_email(email)


def test_password_rules():
    assert accounts.check_password_rules("correct horse", "a@b.co") == "correct horse"
    for weak in ("short", "aaaaaaaaaa", "abababab"):
        with pytest.raises(accounts.InvalidAccount, match="at least"):
            accounts.check_password_rules(weak, "a@b.co")


def _keys(monkeypatch, private: str, public: str = "", dev: str = "0"):
    monkeypatch.setenv("JWT_PRIVATE_KEY", private)
    monkeypatch.setenv("JWT_PUBLIC_KEYS", public)
    monkeypatch.setenv("AUTH_DEV_MODE", dev)
    tokens.keys.cache_clear()
    return tokens.keys()


@pytest.fixture(autouse=True)
def _fresh_keys():
    yield
    tokens.keys.cache_clear()


def test_signing_key_is_required_outside_dev_mode(monkeypatch):
    with pytest.raises(RuntimeError, match="JWT_PRIVATE_KEY"):
        _keys(monkeypatch, "")
    with pytest.raises(ValueError):
        _keys(monkeypatch, "-----BEGIN PRIVATE KEY-----\n!not a key\n-----END PRIVATE KEY-----")
    with pytest.raises(RuntimeError, match="JWT_PUBLIC_KEYS"):
        _keys(monkeypatch, new_private_pem(), public="garbage")
    assert len(_keys(monkeypatch, "", dev="1").verifying) == 1  # dev mode makes a key


def test_issue_and_validate_round_trip(monkeypatch):
    key_set = _keys(monkeypatch, new_private_pem().replace("\n", "\\n"))  # one-line PEM form
    token = tokens.issue({"id": 7, "email": "a@b.co", "is_admin": 1})
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key_set.kid, "typ": "JWT"}
    claims = tokens.validate(token)
    assert claims["sub"] == "7" and claims["admin"] is True and claims["exp"] > time.time()
    (jwk,) = tokens.jwks()["keys"]
    assert jwk["kid"] == key_set.kid and jwk["kty"] == "OKP" and "d" not in jwk


def test_rotation_old_tokens_verify_until_their_key_is_removed(monkeypatch):
    old, new = new_private_pem(), new_private_pem()
    _keys(monkeypatch, old)
    old_token = tokens.issue({"id": 1, "email": "a@b.co", "is_admin": 0})
    _keys(monkeypatch, old, public=public_pem(new))  # step 1: the next key is published first
    assert len(tokens.jwks()["keys"]) == 2
    _keys(monkeypatch, new, public=public_pem(old))  # step 2: it signs; the old one still verifies
    assert tokens.validate(old_token)["sub"] == "1"
    new_token = tokens.issue({"id": 2, "email": "b@b.co", "is_admin": 0})
    _keys(monkeypatch, new)  # step 3: the old key is retired for good
    assert tokens.validate(new_token)["sub"] == "2"
    with pytest.raises(tokens.TokenError, match="unknown or retired"):
        tokens.validate(old_token)


def test_forged_tokens(monkeypatch):
    private = new_private_pem()
    kid = _keys(monkeypatch, private).kid
    claims = {"sub": "1", "admin": True, "iat": int(time.time()), "exp": int(time.time()) + 60}
    forged = {
        "hs256 with the public key": hmac_token(claims, public_pem(private).encode(), kid),
        "alg none": f"{b64url(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{b64url(json.dumps(claims).encode())}.",
        "unknown kid": jwt.encode(claims, load_pem_private_key(private.encode(), None), algorithm="EdDSA",
                                  headers={"kid": "not-a-key-we-know"}),
        "no kid": jwt.encode(claims, load_pem_private_key(private.encode(), None), algorithm="EdDSA"),
        "another key, our kid": jwt.encode(claims, load_pem_private_key(new_private_pem().encode(), None),
                                           algorithm="EdDSA", headers={"kid": kid}),
        "no exp": jwt.encode({"sub": "1", "iat": 1}, load_pem_private_key(private.encode(), None),
                             algorithm="EdDSA", headers={"kid": kid}),
    }
    for name, token in forged.items():
        with pytest.raises(tokens.TokenError):
            tokens.validate(token)
            pytest.fail(name)

