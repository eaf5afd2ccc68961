"""Brute-force limiting of logins, per account and per client address, shared by all replicas via MySQL."""
from __future__ import annotations

import hashlib
import time

from services.common import config

from . import db


def keys_for(email: str, address: str | None) -> list[str]:
    # Hashed so that neither raw emails nor addresses sit in this table.
    keys = ["acct:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()]
    if address:
        keys.append("addr:" + hashlib.sha256(address.encode()).hexdigest())
    return keys


def blocked_for(keys: list[str]) -> int:
    """Seconds until a login with these keys is allowed again (0 = allowed now)."""
    window = config.env_int("LOGIN_LOCKOUT_SECONDS")
    now = time.time()
    longest = 0
    for key in keys:
        limit = config.env_int("LOGIN_MAX_FAILURES_PER_ADDRESS" if key.startswith("addr:") else "LOGIN_MAX_FAILURES")
        row = db.query_one("SELECT failures, window_start FROM login_failures WHERE `key` = %s", (key,))
        if row and row["failures"] >= limit and now - row["window_start"] < window:
            longest = max(longest, int(window - (now - row["window_start"])) + 1)
    return longest


def record_failure(keys: list[str]) -> None:
    window = config.env_int("LOGIN_LOCKOUT_SECONDS")
    now = time.time()
    for key in keys:
        # A new window starts when the old one is over; otherwise count up within it.
        db.execute(
            "INSERT INTO login_failures (`key`, failures, window_start) VALUES (%s, 1, %s) "
            "ON DUPLICATE KEY UPDATE "
            "failures = IF(%s - window_start >= %s, 1, failures + 1), "
            "window_start = IF(%s - window_start >= %s, %s, window_start)",
            (key, now, now, window, now, window, now),
        )


def clear(keys: list[str]) -> None:
    for key in keys:
        db.execute("DELETE FROM login_failures WHERE `key` = %s", (key,))

