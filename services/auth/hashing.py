"""argon2id hashing with a bounded number of hashes at once.

Each hash or verification holds ARGON2_MEMORY_KIB for its whole run, so the worker's peak memory is
ARGON2_MAX_CONCURRENT of them on top of its baseline, however many logins arrive (README "Password
hashing" has the formula, k8s/auth/deployment.yaml its result). Callers beyond the places wait up to
ARGON2_WAIT_SECONDS, then get TooBusy (503 too_busy with Retry-After).
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common import config

from . import metrics

log = logging.getLogger(__name__)

# The worker without any hash in progress: 79 MiB VmHWM measured with 64 concurrent logins of 1 MiB
# hashes (Python, Flask, OpenTelemetry, the MySQL pool, 8 request threads); rounded up.
BASELINE_MIB = 96
# Room for what the measurement did not see (allocator fragmentation, a larger request, a library update).
MARGIN_MIB = 64
REFUSAL_LOG_SECONDS = 10


# Read by no service, kept beside the constants it is made of: tests/deploy and tests/security check the
# manifests' memory limits against it.
def memory_limit_mib(max_concurrent: int, memory_kib: int) -> int:
    """The memory limit a pod needs for these settings: the hashes at once, the baseline, the margin."""
    return math.ceil(max_concurrent * memory_kib / 1024) + BASELINE_MIB + MARGIN_MIB


class TooBusy(Exception):
    """Every hashing place stayed taken for ARGON2_WAIT_SECONDS."""

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(config.env_float("ARGON2_WAIT_SECONDS")))


@functools.cache
def hasher() -> PasswordHasher:
    """argon2id with the cost of ARGON2_* (README "Password hashing" has the choices and their cost)."""
    return PasswordHasher(time_cost=config.env_int("ARGON2_TIME_COST"),
                          memory_cost=config.env_int("ARGON2_MEMORY_KIB"),
                          parallelism=config.env_int("ARGON2_PARALLELISM"))


@functools.cache
def _places() -> threading.BoundedSemaphore:
    places = max(config.env_int("ARGON2_MAX_CONCURRENT"), 1)
    metrics.HASH_PLACES.set(places)
    return threading.BoundedSemaphore(places)


@contextmanager
def _place() -> Iterator[None]:
    """Hold one of the ARGON2_MAX_CONCURRENT places for the block, waiting a bounded time for it."""
    started = time.monotonic()
    if not _places().acquire(blocking=False):
        metrics.HASH_QUEUED.inc()
        if not _places().acquire(timeout=config.env_float("ARGON2_WAIT_SECONDS")):
            metrics.HASH_REFUSED.inc()
            _log_refusal()
            raise TooBusy()
    metrics.HASH_WAIT.observe(time.monotonic() - started)
    metrics.HASHES_IN_PROGRESS.inc()
    try:
        yield
    finally:
        metrics.HASHES_IN_PROGRESS.dec()
        _places().release()


_refusals = {"logged_at": float("-inf"), "since": 0}
_refusals_lock = threading.Lock()


def _log_refusal() -> None:
    """One warning per REFUSAL_LOG_SECONDS with the count, not one per refused request of a flood."""
    with _refusals_lock:
        _refusals["since"] += 1
        if time.monotonic() - _refusals["logged_at"] < REFUSAL_LOG_SECONDS:
            return
        count, _refusals["since"], _refusals["logged_at"] = _refusals["since"], 0, time.monotonic()
    log.warning("password hashing busy: %d hashes refused (503 too_busy) after waiting %s s for one of %d places",
                count, config.env("ARGON2_WAIT_SECONDS"), config.env_int("ARGON2_MAX_CONCURRENT"))


def hash_password(password: str) -> str:
    with _place():
        metrics.HASHES.labels("hash").inc()
        return hasher().hash(password)


def verify(stored: str, password: str) -> bool:
    """Whether the password matches the stored hash (a malformed hash never matches)."""
    with _place():
        metrics.HASHES.labels("verify").inc()
        try:
            return hasher().verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(stored: str) -> bool:
    return hasher().check_needs_rehash(stored)


@functools.cache
def dummy_hash() -> str:
    """Verified against when the account does not exist, so both failures take the same time."""
    return hash_password("not-a-real-password-only-for-timing")
