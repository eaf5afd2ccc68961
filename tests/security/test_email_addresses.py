"""Email addresses are checked (email-validator) and normalised before they are stored: an address that
SMTP or mail headers would read specially is refused with 400 invalid_email, through the gateway's
POST /register and auth's own; accounts stored before the check keep logging in."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.unit.test_auth_rules import UNSAFE


def _register(base: str, email: str) -> requests.Response:
    return requests.post(f"{base}/register", json={"email": email, "password": "a-good-password-42"}, timeout=15)


@pytest.mark.parametrize("service", ["gateway", "auth"])
@pytest.mark.parametrize("email", UNSAFE)
def test_unsafe_addresses_are_refused(stack, service, email):
    answer = _register(stack[service], email.replace("@", f"{uuid.uuid4().hex[:6]}@", 1))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_email"


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_addresses_are_stored_normalised_and_log_in_in_any_case(stack, service):
    local = f"Mixed.Case+{uuid.uuid4().hex[:6]}"
    created = _register(stack[service], f"{local}@BÜCHER.Example.COM")
    assert created.status_code == 201, created.text
    assert created.json()["email"] == f"{local.lower()}@xn--bcher-kva.example.com"
    # Basic credentials as curl sends them: UTF-8 bytes (requests would send a str as Latin-1)
    login = requests.post(f"{stack[service]}/login", timeout=15,
                          auth=(f"{local.upper()}@bücher.example.com".encode(), b"a-good-password-42"))
    assert login.status_code == 200, login.text
    again = _register(stack[service], f"{local.lower()}@xn--bcher-kva.example.com")
    assert again.status_code == 409 and again.json()["error"]["code"] == "email_taken"


def test_an_account_stored_before_the_check_still_logs_in(stack):
    from services.auth import db, hashing

    legacy = f"old,style-{uuid.uuid4().hex[:6]}@example.com"  # refused today, accepted by the old rules
    db.create_user(legacy, hashing.hash_password("a-good-password-42"))
    login = requests.post(f"{stack['gateway']}/login", auth=(legacy.upper(), "a-good-password-42"), timeout=15)
    assert login.status_code == 200, login.text
