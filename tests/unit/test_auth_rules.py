"""Account rules and token handling (pure logic)."""
from __future__ import annotations

import time

import jwt
import pytest

from services.auth import accounts, tokens


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


def test_secret_is_required_outside_dev_mode(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "too-short")
    monkeypatch.setenv("AUTH_DEV_MODE", "0")
    with pytest.raises(RuntimeError, match="at least 32"):
        tokens.signing_key()
    monkeypatch.setenv("AUTH_DEV_MODE", "1")
    assert tokens.signing_key() == "too-short"


def test_issue_and_validate_round_trip(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "s" * 40)
    token = tokens.issue({"id": 7, "email": "a@b.co", "is_admin": 1})
    claims = tokens.validate(token)
    assert claims["sub"] == "7" and claims["admin"] is True and claims["exp"] > time.time()
    forged = jwt.encode({**claims, "admin": True}, "k" * 40, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.validate(forged)
