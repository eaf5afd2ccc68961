"""Account rules: email and password validation, login checks (hashing.py does the argon2id work)."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from . import db, hashing

MIN_PASSWORD, MAX_PASSWORD, MAX_EMAIL = 8, 256, 254
# Valid in RFC 5322 but read as routing by some mail servers (the "percent hack", UUCP bang paths).
ROUTING_CHARACTERS = set("%!")


class InvalidAccount(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def normalise_email(value) -> str:
    """The address as stored: checked by email-validator (no quoted local part, display name, domain
    literal, or character that SMTP or mail headers read specially), in its ASCII normalized form,
    lower-cased whole (as every account was stored before, so logins keep finding them)."""
    if not isinstance(value, str):
        raise InvalidAccount("invalid_email", "email must be a string")
    try:
        # smtputf8 off: a non-ASCII local part needs SMTPUTF8 from every relay on the way; strict: at
        # most 64 characters before the @ (RFC 5321).
        checked = validate_email(value.strip(" "), check_deliverability=False, allow_smtputf8=False,
                                 strict=True)
    except EmailNotValidError as exc:
        raise InvalidAccount("invalid_email", f"email is not a valid address: {exc}") from None
    if ROUTING_CHARACTERS & set(checked.local_part):
        raise InvalidAccount("invalid_email", "email is not a valid address: % and ! are not accepted")
    return (checked.ascii_email or checked.normalized).lower()


def login_email(value: str) -> str:
    """The address a login looks up: the normalised form, or for an address today's rules refuse (an
    account made before them) the form it was stored in then."""
    try:
        return normalise_email(value)
    except InvalidAccount:
        return value.strip().lower()


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
    user_id = db.create_user(email, hashing.hash_password(password), is_admin)
    return {"id": user_id, "email": email, "admin": is_admin}


def authenticate(email: str, password: str) -> dict | None:
    """The user when the password matches; None otherwise, in the same time either way.
    Raises hashing.TooBusy when no hashing place became free in time."""
    fits = len(email) <= MAX_EMAIL and len(password) <= MAX_PASSWORD
    user = db.find_user(login_email(email)) if fits else None
    stored = user["password_hash"] if user else hashing.dummy_hash()
    if not hashing.verify(stored, password[:MAX_PASSWORD]) or user is None:
        return None
    if hashing.needs_rehash(stored):  # hashed with other ARGON2_* settings: once, at this login
        _rehash(user["id"], password)
    return user


def _rehash(user_id: int, password: str) -> None:
    try:
        db.update_password(user_id, hashing.hash_password(password))
    except hashing.TooBusy:
        pass  # the password was right: the login succeeds, and a later one rehashes
