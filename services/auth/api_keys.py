"""Personal API keys: long-lived credentials for programs, `v2m_<public id>_<secret>`.

The public id finds the row (the primary key: one index look-up); the secret is checked against its
stored hash. A key is shown once, when made: only its SHA-256 is kept. A fast hash is right here, not
argon2/bcrypt: those are slow on purpose so that a stolen hash of a *guessable password* costs much to
crack, but the secret is 256 random bits, which no amount of hashing speed makes guessable, and a slow
hash would cost every API request an argon2 run (memory and CPU of auth, ARGON2_MAX_CONCURRENT places).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from services.common import config
from services.common.tokens import API_KEY_ID_LENGTH, API_KEY_PREFIX, API_KEY_SECRET_LENGTH, parse_api_key

from . import db, metrics

PREFIX = API_KEY_PREFIX
ID_LENGTH, SECRET_LENGTH = API_KEY_ID_LENGTH, API_KEY_SECRET_LENGTH  # the id is unique, not secret
_ALPHABET = string.ascii_letters + string.digits
SCOPES = ("read", "full")
MAX_NAME, MAX_DAYS = 100, 3650
FIELDS = frozenset({"name", "scope", "expires_in_days", "expires_at"})
LAST_USED_EVERY = 60  # seconds: `last_used` is written at most this often per key (a write per request costs)
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()


class InvalidKeyRequest(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class TooManyKeys(Exception):
    pass


class UnknownUser(Exception):
    """The credential's user no longer exists."""


@dataclass(frozen=True)
class Principal:
    """Who a valid key speaks for, and how far."""
    user_id: int
    email: str
    admin: bool
    key_id: str
    scope: str

    def claims(self) -> dict:
        """The shape of a token's claims (the gateway treats both alike), plus the key's id and scope."""
        return {"sub": str(self.user_id), "email": self.email, "admin": self.admin,
                "api_key": {"id": self.key_id, "scope": self.scope}}


def _hash(key_id: str, secret: str) -> bytes:
    # The id is part of the hashed text: a row's hash cannot be moved to another id.
    return hashlib.sha256(f"{key_id}:{secret}".encode()).digest()


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if ts else None


def _parse_expiry(data: dict, now: float) -> float | None:
    """The key's expiry (epoch seconds) from `expires_in_days` or `expires_at`; None: it never expires."""
    if "expires_in_days" in data and "expires_at" in data:
        raise InvalidKeyRequest("invalid_expiry", "give expires_in_days or expires_at, not both")
    if "expires_in_days" in data:
        days = data["expires_in_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
            raise InvalidKeyRequest("invalid_expiry", f"expires_in_days must be a whole number from 1 to {MAX_DAYS}")
        return now + days * 86400
    if "expires_at" in data:
        try:
            moment = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidKeyRequest("invalid_expiry", "expires_at must be an ISO 8601 date and time") from None
        if moment.tzinfo is None:
            raise InvalidKeyRequest("invalid_expiry", "expires_at must name its time zone (e.g. Z)")
        ts = moment.timestamp()
        if not now < ts <= now + MAX_DAYS * 86400:
            raise InvalidKeyRequest("invalid_expiry", f"expires_at must be in the future, at most {MAX_DAYS} days away")
        return ts
    return None


def _parse(data: dict) -> tuple[str, str, float | None]:
    """(name, scope, expiry) of a create request; InvalidKeyRequest for anything else in it."""
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise InvalidKeyRequest("unknown_field",
                                f"unknown field {unknown[0][:40]!r}; allowed: {', '.join(sorted(FIELDS))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidKeyRequest("invalid_name", "name is required: a text that says what the key is for")
    name = name.strip()
    if len(name) > MAX_NAME or any(not ch.isprintable() for ch in name):
        raise InvalidKeyRequest("invalid_name", f"name: at most {MAX_NAME} printable characters")
    scope = data.get("scope", "full")
    if scope not in SCOPES:
        raise InvalidKeyRequest("invalid_scope", "scope must be read or full")
    return name, scope, _parse_expiry(data, time.time())


def create(user_id: int, data: dict) -> dict:
    """A new key of the user's: its view with the key itself, which is never shown again."""
    name, scope, expires = _parse(data)
    key_id, secret = secrets.token_hex(ID_LENGTH // 2), "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    now = time.time()
    with db.transaction() as cur:
        # The user's row, locked: concurrent creations of one user count one after another (the limit holds).
        cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
        if cur.fetchone() is None:
            raise UnknownUser()
        cur.execute("SELECT COUNT(*) AS n FROM api_keys WHERE user_id = %s", (user_id,))
        if cur.fetchone()["n"] >= config.env_int("API_KEYS_MAX_PER_USER"):
            raise TooManyKeys()
        cur.execute("INSERT INTO api_keys (id, user_id, name, scope, secret_hash, created_at, expires_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)", (key_id, user_id, name, scope, _hash(key_id, secret), now,
                                                            expires))
    row = {"id": key_id, "name": name, "scope": scope, "created_at": now, "last_used_at": None, "expires_at": expires}
    return dict(_view(row, now), key=f"{PREFIX}{key_id}_{secret}")


def _view(row: dict, now: float) -> dict:
    return {"id": row["id"], "name": row["name"], "prefix": f"{PREFIX}{row['id']}", "scope": row["scope"],
            "created_at": _iso(row["created_at"]), "last_used_at": _iso(row["last_used_at"]),
            "expires_at": _iso(row["expires_at"]),
            "expired": row["expires_at"] is not None and row["expires_at"] <= now}


def list_keys(user_id: int) -> list[dict]:
    with db.cursor() as cur:
        cur.execute("SELECT id, name, scope, created_at, last_used_at, expires_at FROM api_keys WHERE user_id = %s "
                    "ORDER BY created_at DESC", (user_id,))
        rows = cur.fetchall()
    now = time.time()
    return [_view(row, now) for row in rows]


def revoke(user_id: int, key_id: str) -> bool:
    """Remove the user's key: every later check of it fails (nothing caches a key's validity)."""
    with db.cursor() as cur:
        return cur.execute("DELETE FROM api_keys WHERE id = %s AND user_id = %s", (key_id[:ID_LENGTH], user_id)) == 1


def verify(key: str) -> Principal | None:
    """Who the key speaks for, or None (malformed, unknown, wrong secret, expired, its user gone)."""
    parts = parse_api_key(key)
    if parts is None:
        metrics.API_KEY_CHECKS.labels("malformed").inc()
        return None
    key_id, secret = parts
    row = db.query_one("SELECT k.secret_hash, k.scope, k.expires_at, k.last_used_at, u.id AS user_id, u.email, "
                       "u.is_admin FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = %s", (key_id,))
    # Compared in constant time, and compared even for an unknown id, so the answer's time tells nothing.
    matches = hmac.compare_digest(_hash(key_id, secret), row["secret_hash"] if row else _DUMMY_HASH)
    now = time.time()
    if row is None or not matches:
        metrics.API_KEY_CHECKS.labels("unknown" if row is None else "wrong_secret").inc()
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        metrics.API_KEY_CHECKS.labels("expired").inc()
        return None
    _touch(key_id, row["last_used_at"], now)
    metrics.API_KEY_CHECKS.labels("valid").inc()
    return Principal(row["user_id"], row["email"], bool(row["is_admin"]), key_id, row["scope"])


def _touch(key_id: str, last_used: float | None, now: float) -> None:
    """Record the use when the stored one is over LAST_USED_EVERY old (one write a minute per key, at most)."""
    if last_used is None or now - last_used >= LAST_USED_EVERY:
        db.execute("UPDATE api_keys SET last_used_at = %s "
                   "WHERE id = %s AND (last_used_at IS NULL OR last_used_at < %s)",
                   (now, key_id, now - LAST_USED_EVERY))
