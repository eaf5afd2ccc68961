"""Tokens this gateway process has verified, so a client's next requests skip the signature check.

Keyed by the whole token (signature included): a hit is the very string that verified. A hit still
checks the expiry and that its key is still in auth's key set (a retired key's tokens stop working
at the next key fetch, as without the cache). Bounded: the oldest entries go first.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

from services.common import tokens

from . import jwks

MAX_ENTRIES = 1024  # tokens are ≤ 4 KiB: at most ~4 MiB, typically ~0.5 MiB
_lock = threading.Lock()
_claims: OrderedDict[str, tuple[str, dict]] = OrderedDict()


def cached(token: str) -> dict | None:
    """The claims of a token verified before that still holds (not expired, its key still known), else None."""
    with _lock:
        hit = _claims.get(token)
    if hit is None:
        return None
    kid, claims = hit
    if time.time() <= claims["exp"] + tokens.LEEWAY_SECONDS and jwks.public_key(kid) is not None:
        return dict(claims)  # a copy: a caller cannot change what the next request sees
    with _lock:
        _claims.pop(token, None)
    return None


def verify(token: str) -> dict:
    """The token's claims, verified now and remembered for `cached` (tokens.TokenError /
    jwks.KeysUnavailable); callers ask `cached` first."""
    claims = tokens.verify(token, jwks.public_key)
    with _lock:
        _claims[token] = (tokens.token_kid(token), claims)
        while len(_claims) > MAX_ENTRIES:
            _claims.popitem(last=False)
    return dict(claims)
