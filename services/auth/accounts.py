"""Account rules: email and password validation, argon2id hashing, login checks."""
from __future__ import annotations

import re

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common import config

from . import db


@functools.cache
def hasher() -> PasswordHasher:
    """argon2id with the cost of ARGON2_* (README "Password hashing" has the choices and their cost)."""
    return PasswordHasher(time_cost=config.env_int("ARGON2_TIME_COST"),
                          memory_cost=config.env_int("ARGON2_MEMORY_KIB"),
                          parallelism=config.env_int("ARGON2_PARALLELISM"))


@functools.cache
def dummy_hash() -> str:
    """Verified against when the account does not exist, so both failures take the same time."""
    return hasher().hash("not-a-real-password-only-for-timing")

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")
MIN_PASSWORD, MAX_PASSWORD = 8, 256


class InvalidAccount(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def normalise_email(value) -> str:
    if not isinstance(value, str):
        raise InvalidAccount("invalid_email", "email must be a string")
    email = value.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidAccount("invalid_email", "email is not a valid address")
    return email


def check_password_rules(value, email: str) -> str:
    if not isinstance(value, str):
        raise InvalidAccount("invalid_password", "password must be a string")
    if len(value) > MAX_PASSWORD:
        raise InvalidAccount("invalid_password", f"password longer than {MAX_PASSWORD} characters")
    if len(value) < MIN_PASSWORD or len(set(value)) < 4 or value.lower() == email:
        raise InvalidAccount("weak_password",
                             f"password needs at least {MIN_PASSWORD} characters, 4 of them different, "
                             "and must not be the email")
    return value


def register(email, password, is_admin: bool = False) -> dict:
    email = normalise_email(email)
    password = check_password_rules(password, email)
    user_id = db.create_user(email, hasher().hash(password), is_admin)
    return {"id": user_id, "email": email, "admin": is_admin}


def authenticate(email: str, password: str) -> dict | None:
    """The user when the password matches; None otherwise, in the same time either way."""
    user = db.find_user(email.strip().lower()) if len(email) <= 254 and len(password) <= MAX_PASSWORD else None
    stored = user["password_hash"] if user else dummy_hash()
    try:
        hasher().verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if hasher().check_needs_rehash(stored):  # hashed with other ARGON2_* settings: once, at this login
        db.update_password(user["id"], hasher().hash(password))
    return user
