"""Token-free download links: an HMAC-signed (itsdangerous) token naming the job, its result and the expiry.

The token is deterministic (no issue time inside), so every view of one job shows the same link.
Signing alone cannot revoke, so the route also checks the job still exists and still holds that
result: deleting the job voids its link.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer

from . import config

MIN_SECRET_LENGTH = 32
_DEV_SECRET = "vid2mp3-local-development-link-secret-never-in-production"
_SALT = "vid2mp3.download-link.v1"  # a signature made for anything else never validates here


class LinkForged(Exception):
    """The token's signature or shape is wrong (answer 403)."""


class LinkExpired(Exception):
    """The token was genuine but its file's retention has passed (answer 410)."""


@dataclass(frozen=True)
class Link:
    job_id: str
    result_id: str
    expires: int  # unix seconds


def signing_key() -> str:
    """LINK_SECRET; refuses a missing or short one unless AUTH_DEV_MODE=1 (checked at start-up too)."""
    secret = config.env("LINK_SECRET")
    if len(secret) >= MIN_SECRET_LENGTH:
        return secret
    if config.env_bool("AUTH_DEV_MODE"):
        return secret or _DEV_SECRET
    raise RuntimeError(f"LINK_SECRET must be set to at least {MIN_SECRET_LENGTH} characters "
                       "(or AUTH_DEV_MODE=1 for local development only)")


def _serializer() -> URLSafeSerializer:
    return _serializer_for(signing_key())


@lru_cache(maxsize=4)
def _serializer_for(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


def link_path(token: str) -> str:
    return f"/links/{token}"


def sign(job_id: str, result_id: str, expires: float) -> str:
    return _signed(signing_key(), job_id, result_id, int(expires))


@lru_cache(maxsize=4096)
def _signed(secret: str, job_id: str, result_id: str, expires: int) -> str:
    # Deterministic, so remembered: every view of a done job (polled by its client) shows this same link.
    return _serializer_for(secret).dumps([job_id, result_id, expires])


def verify(token: str, now: float | None = None) -> Link:
    """The link a token names; LinkForged when tampered, LinkExpired once its expiry has passed."""
    try:
        job_id, result_id, expires = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):  # bad signature, or a signed value of another shape
        raise LinkForged() from None
    if not (isinstance(job_id, str) and isinstance(result_id, str) and isinstance(expires, int)):
        raise LinkForged()
    if expires <= (time.time() if now is None else now):
        raise LinkExpired()
    return Link(job_id, result_id, expires)
