"""Account rules and token handling (pure logic)."""
from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.auth import accounts, tokens
from services.common import tokens as common_tokens
from devkit.keys import b64url, hmac_token, new_private_pem, public_pem


@pytest.mark.parametrize("email", ["a@b.co", "First.Last+tag@sub.example.org", " MIXED@Example.COM ",
                                   "o'brien@example.com"])
def test_valid_emails_are_normalised(email):
    assert accounts.normalise_email(email) == email.strip().lower()


def test_emails_take_the_validators_ascii_normalized_form():
    assert accounts.normalise_email("User@BÜCHER.de") == "user@xn--bcher-kva.de"
    assert accounts.normalise_email("user@xn--bcher-kva.de") == "user@xn--bcher-kva.de"
    assert accounts.normalise_email("a@ＥＸＡＭＰＬＥ.com") == "a@example.com"  # full-width letters (NFKC)


# What SMTP or mail headers read specially: separators, brackets, quotes, routing, line breaks, controls.
UNSAFE = ["a,b@example.com", "a<b>@example.com", 'x"y@example.com', '"quoted"@example.com', '"a b"@example.com',
          "a\r\nbcc@example.com", "a@example.com\r\nBcc: x@example.com", "a b@example.com", "a\tb@example.com",
          "a;b@example.com", "a:b@example.com", "a(b)@example.com", "a\\b@example.com", "a%b@example.com",
          "a!b@example.com", "Name <a@example.com>", "a@[127.0.0.1]", "a@b@example.com", "a\x00@example.com",
          "ü@example.com", "a..b@example.com", "a@example.invalid"]


@pytest.mark.parametrize("email", ["", "no-at", "a@b", "a@-b.com", "x" * 65 + "@b.com", None, 5, *UNSAFE])
def test_invalid_emails(email):
    with pytest.raises(accounts.InvalidAccount) as refused:
        accounts.normalise_email(email)
    assert refused.value.code == "invalid_email"


def test_logins_find_accounts_stored_before_the_validator():
    assert accounts.login_email(" Old,Style@Example.com") == "old,style@example.com"
    assert accounts.login_email("User@BÜCHER.de") == "user@xn--bcher-kva.de"


def test_login_slowdown_grows_per_failure_beyond_the_limit_up_to_its_cap(monkeypatch):
    from services.auth import limits

    for name, value in (("LOGIN_MAX_FAILURES", "10"), ("LOGIN_SLOWDOWN_STEP_SECONDS", "0.25"),
                        ("LOGIN_SLOWDOWN_MAX_SECONDS", "2")):
        monkeypatch.setenv(name, value)
    assert [limits.slowdown_seconds(n) for n in (1, 10, 11, 12, 18, 19, 1000)] == [0, 0, 0.25, 0.5, 2, 2, 2]


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
        "alg none": f"{b64url(json.dumps({'alg': 'none', 'kid': kid}).encode())}."
                    f"{b64url(json.dumps(claims).encode())}.",
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



def test_jwks_entries_the_gateway_accepts(monkeypatch):
    _keys(monkeypatch, new_private_pem())
    (good,) = tokens.jwks()["keys"]
    assert common_tokens.key_id(common_tokens.from_jwk(good)) == good["kid"]
    for bad in ({**good, "kty": "RSA"}, {**good, "crv": "X25519"}, {**good, "alg": "HS256"}, {**good, "use": "enc"},
                {**good, "x": "too-short"}, {k: v for k, v in good.items() if k != "x"}, "not a dict", None):
        assert common_tokens.from_jwk(bad) is None, bad
