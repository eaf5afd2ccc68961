"""JWT issuing and validation (HS256 only; the algorithm is pinned on decode)."""
from __future__ import annotations

import time

import jwt

from services.common import config

ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32
_DEV_SECRET = "dev-only-insecure-secret-change-me-0123456789"


class TokenError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def signing_key() -> str:
    """The secret from JWT_SECRET; refuses a missing or short one unless AUTH_DEV_MODE=1."""
    secret = config.env("JWT_SECRET")
    if len(secret) >= MIN_SECRET_LENGTH:
        return secret
    if config.env_bool("AUTH_DEV_MODE"):
        return secret or _DEV_SECRET
    raise RuntimeError(f"JWT_SECRET must be set to at least {MIN_SECRET_LENGTH} characters "
                       "(or AUTH_DEV_MODE=1 for local development only)")


def issue(user: dict) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user["id"]),
        "email": user["email"],
        "admin": bool(user["is_admin"]),
        "iat": now,
        "nbf": now,
        "exp": now + config.env_int("JWT_TTL_SECONDS"),
    }
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM)


def validate(token: str) -> dict:
    if not token or len(token) > 4096:
        raise TokenError("invalid_token", "token missing or too long")
    try:
        claims = jwt.decode(
            token, signing_key(), algorithms=[ALGORITHM],
            options={"require": ["sub", "iat", "exp"]}, leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token_expired", "token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("invalid_token", "token is not valid yet") from None
    except jwt.InvalidTokenError:
        raise TokenError("invalid_token", "token is malformed, wrongly signed or uses another algorithm") from None
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("admin", False), bool):
        raise TokenError("invalid_token", "token claims have the wrong types")
    return claims
