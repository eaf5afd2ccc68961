"""Attempt limits shared by all replicas via MySQL. Each key counts attempts within a fixed window, and
every attempt is counted before its password is hashed (`take`), so concurrent attempts on several
replicas never pass a limit.

Logins: failures lock the pair (account, client address), and a client address as a whole; failures
of one account from any address only slow its logins down (`slowdown_seconds`), so nobody can lock an
owner out of their own account from somewhere else. Registrations: attempts per client address."""
from __future__ import annotations

import hashlib
import math
import time
import dataclasses
from dataclasses import dataclass

from services.common import config
from services.common.ratelimit import Standing

from . import db

# key kind -> (setting of the limit, setting of the window in seconds)
LIMITS = {
    "pair": ("LOGIN_MAX_FAILURES", "LOGIN_LOCKOUT_SECONDS"),
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


def registration_key(address: str) -> str:
    return _key("reg", address)


def _count(key: str) -> tuple[int, float]:
    """Count one attempt (a new window starts when the old one is over): the count this attempt made,
    and the seconds left of the key's window. LAST_INSERT_ID(expr) hands each increment its own result,
    so of n concurrent attempts exactly one reads each of the counts 1..n."""
    now, window = time.time(), _limit(key)[1]
    count = db.execute(
        "INSERT INTO login_failures (`key`, failures, window_start) VALUES (%s, LAST_INSERT_ID(1), %s) "
        "ON DUPLICATE KEY UPDATE "
        "failures = LAST_INSERT_ID(IF(%s - window_start >= %s, 1, failures + 1)), "
        "window_start = IF(%s - window_start >= %s, %s, window_start)",
        (key, now, now, window, now, window, now),
    )
    row = db.query_one("SELECT window_start FROM login_failures WHERE `key` = %s", (key,))
    return count, max(window - (time.time() - row["window_start"]), 0.0)


@dataclass(frozen=True)
class Counted:
    """One attempt counted on a key: the count it made, the key's limit and what is left of its window."""

    policy: str  # the name clients see in the RateLimit headers
    count: int
    limit: int
    window: int
    left: float

    @property
    def wait(self) -> int:
        """Seconds to wait when the attempt is over the limit (0 = allowed)."""
        return int(self.left) + 1 if self.count > self.limit else 0

    def standing(self) -> Standing:
        return Standing(self.policy, self.limit, self.limit - max(self.count, 0), self.window, math.ceil(self.left))

    def less(self, attempts: int) -> Counted:
        """This count once `attempts` of it are given back (an outcome that does not count them)."""
        return dataclasses.replace(self, count=self.count - attempts)


def take(key: str, policy: str) -> Counted:
    """Count this attempt first, then judge it (Counted.wait)."""
    count, left = _count(key)
    limit, window = _limit(key)
    return Counted(policy, count, limit, window, left)


def give_back(key: str) -> None:
    """Uncount one attempt that turned out not to be a failure."""
    db.execute("UPDATE login_failures SET failures = failures - 1 WHERE `key` = %s AND failures > 0", (key,))


def clear(key: str) -> None:
    db.execute("DELETE FROM login_failures WHERE `key` = %s", (key,))


def slowdown_seconds(account_failures: int) -> float:
    """The delay of a login whose account counts this many attempts in its window: none up to
    LOGIN_MAX_FAILURES, then LOGIN_SLOWDOWN_STEP_SECONDS more per attempt, up to LOGIN_SLOWDOWN_MAX_SECONDS."""
    excess = account_failures - config.env_int("LOGIN_MAX_FAILURES")
    if excess <= 0:
        return 0.0
    return min(excess * config.env_float("LOGIN_SLOWDOWN_STEP_SECONDS"), config.env_float("LOGIN_SLOWDOWN_MAX_SECONDS"))


class LoginAttempt:
    """One login's keys: the pair (account, address) and the address lock; the account only slows down."""

    def __init__(self, account: str, address: str):
        self.pair = _key("pair", f"{account}\n{address}")
        self.address = _key("addr", address)
        self.account = _key("acct", account)
        self.counted: list[Counted] = []  # the pair's and the address's, as the outcome leaves them

    def take(self) -> int:
        """Count the attempt on the pair and the address: seconds to wait when either is over its limit."""
        self.counted = [take(self.pair, "login"), take(self.address, "login_address")]
        return max(counted.wait for counted in self.counted)

    def standings(self) -> list[Standing]:
        """The caller's standing in both limits after this attempt (the RateLimit headers)."""
        return [counted.standing() for counted in self.counted]

    def slowdown(self) -> float:
        """Count the attempt on the account (only once the pair and address allowed it): its delay."""
        return slowdown_seconds(_count(self.account)[0])

    def not_checked(self) -> None:
        """The password was never checked (auth too busy): the attempt counts nowhere."""
        for key in (self.pair, self.address, self.account):
            give_back(key)
        self.counted = [counted.less(1) for counted in self.counted]

    def succeeded(self) -> None:
        """The right password: the pair starts afresh; the address and account lose this attempt only
        (failures from elsewhere keep counting)."""
        clear(self.pair)
        give_back(self.address)
        give_back(self.account)
        pair, address = self.counted
        self.counted = [pair.less(pair.count), address.less(1)]
