"""Attempt limits shared by all replicas via MySQL: failed logins per account and per client address,
and registrations per client address. Each key counts attempts within a fixed window."""
from __future__ import annotations

import hashlib
import time

from services.common import config

from . import db

# key kind -> (setting of the limit, setting of the window in seconds)
LIMITS = {
    "acct": ("LOGIN_MAX_FAILURES", "LOGIN_LOCKOUT_SECONDS"),
    "addr": ("LOGIN_MAX_FAILURES_PER_ADDRESS", "LOGIN_LOCKOUT_SECONDS"),
    "reg": ("REGISTER_MAX_PER_ADDRESS", "REGISTER_WINDOW_SECONDS"),
}


def _key(kind: str, value: str) -> str:
    # Hashed so that neither raw emails nor addresses sit in the table.
    return f"{kind}:" + hashlib.sha256(value.encode()).hexdigest()


def _limit(key: str) -> tuple[int, int]:
    limit, window = LIMITS[key.partition(":")[0]]
    return config.env_int(limit), config.env_int(window)


def keys_for(email: str, address: str | None) -> list[str]:
    """The keys of a login: the account, and the client address when known."""
    keys = [_key("acct", email.strip().lower())]
    if address:
        keys.append(_key("addr", address))
    return keys


def registration_key(address: str) -> str:
    return _key("reg", address)


def _wait(key: str, allowed: int) -> int:
    """Seconds until the key's window ends if it has counted more than `allowed` attempts in it, else 0."""
    limit, window = _limit(key)
    row = db.query_one("SELECT failures, window_start FROM login_failures WHERE `key` = %s", (key,))
    elapsed = time.time() - row["window_start"] if row else window
    if row and row["failures"] > allowed and elapsed < window:
        return int(window - elapsed) + 1
    return 0


def blocked_for(keys: list[str]) -> int:
    """Seconds until an attempt with these keys is allowed again (0 = allowed now)."""
    return max((_wait(key, _limit(key)[0] - 1) for key in keys), default=0)


def record(keys: list[str]) -> None:
    """Count one attempt for each key (a new window starts when the old one is over)."""
    now = time.time()
    for key in keys:
        window = _limit(key)[1]
        db.execute(
            "INSERT INTO login_failures (`key`, failures, window_start) VALUES (%s, 1, %s) "
            "ON DUPLICATE KEY UPDATE "
            "failures = IF(%s - window_start >= %s, 1, failures + 1), "
            "window_start = IF(%s - window_start >= %s, %s, window_start)",
            (key, now, now, window, now, window, now),
        )


def take(key: str) -> int:
    """Count this attempt first, then judge it: seconds to wait when it is over the limit (0 = allowed).

    Counting before judging keeps the limit exact under concurrent attempts on several replicas:
    the n-th increment always sees a count of at least n."""
    record([key])
    return _wait(key, _limit(key)[0])


def clear(keys: list[str]) -> None:
    for key in keys:
        db.execute("DELETE FROM login_failures WHERE `key` = %s", (key,))
