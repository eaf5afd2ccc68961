"""auth's public keys (GET AUTH_URL/.well-known/jwks.json), cached so the gateway verifies tokens itself.

The cache is refetched when it is older than JWKS_CACHE_SECONDS (a removed, retired key stops verifying
within that time) and when a token names a kid it does not hold (a new signing key), but never more often
than once per JWKS_REFRESH_MIN_SECONDS: a flood of made-up kids cannot turn into a flood of calls to auth.
A failed fetch keeps the keys already held, so tokens keep verifying while auth is down.
"""
from __future__ import annotations

import threading
import time

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.common import config
from services.common.tokens import from_jwk, key_id

from . import metrics

_session = requests.Session()
_lock = threading.Lock()
_keys: dict[str, Ed25519PublicKey] = {}
_fetched_at = 0.0  # monotonic time of the last successful fetch
_tried_at = float("-inf")  # monotonic time of the last attempt, successful or not


class KeysUnavailable(Exception):
    """No key was ever fetched and auth cannot be reached: the token may be valid, so this is a 503."""


def _fetch() -> dict[str, Ed25519PublicKey]:
    response = _session.get(config.env("AUTH_URL").rstrip("/") + "/.well-known/jwks.json",
                            timeout=config.env_float("UPSTREAM_TIMEOUT_SECONDS"))
    response.raise_for_status()
    entries = response.json().get("keys")
    if not isinstance(entries, list):
        raise ValueError("JWKS without a keys list")
    keys = {}
    for entry in entries:
        key = from_jwk(entry)
        # the kid must be the key's own thumbprint: a JWKS entry cannot claim another key's name
        if key is not None and entry.get("kid") == key_id(key):
            keys[entry["kid"]] = key
    return keys


def _refresh(now: float) -> None:
    global _keys, _fetched_at, _tried_at
    _tried_at = now
    try:
        _keys, _fetched_at = _fetch(), now
        metrics.JWKS_FETCHES.labels("ok").inc()
        metrics.JWKS_KEYS.set(len(_keys))
    except (requests.RequestException, ValueError, AttributeError):
        metrics.JWKS_FETCHES.labels("failed").inc()


def public_key(kid: str) -> Ed25519PublicKey | None:
    """The key named `kid`, fetching the key set when it is stale or lacks the kid (rate-limited)."""
    with _lock:
        now = time.monotonic()
        never = _fetched_at == 0.0  # until a first fetch succeeds, every request may try (one at a time)
        stale = now - _fetched_at >= config.env_float("JWKS_CACHE_SECONDS")
        if never or ((stale or kid not in _keys) and now - _tried_at >= config.env_float("JWKS_REFRESH_MIN_SECONDS")):
            _refresh(now)
        if _fetched_at == 0.0:
            raise KeysUnavailable()
        return _keys.get(kid)


def warm() -> None:
    """Fetch the keys once at start (best effort: a failure is retried on the first request)."""
    with _lock:
        _refresh(time.monotonic())
