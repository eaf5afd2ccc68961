"""Token verification shared by auth (its key set's own check) and the gateway (every authenticated request):
one algorithm (EdDSA, pinned), a `kid` naming the public key, and the same claim rules on both sides."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 4096
MAX_KID_LENGTH = 64
LEEWAY_SECONDS = 5


class TokenError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint: the same key always has the same kid, so nothing names keys by hand."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64(raw_public(key))}, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest())


def to_jwk(key: Ed25519PublicKey) -> dict:
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw_public(key)), "kid": key_id(key), "alg": ALGORITHM,
            "use": "sig"}


def from_jwk(jwk: dict) -> Ed25519PublicKey | None:
    """The public key of one JWKS entry; None for any entry that is not an Ed25519 signing key."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
        return None
    try:
        x = base64.urlsafe_b64decode(str(jwk["x"]) + "==")
        return Ed25519PublicKey.from_public_bytes(x)
    except (KeyError, ValueError, TypeError):
        return None


def token_kid(token: str) -> str:
    """The `kid` of a token's header, checked before any key is looked up (only EdDSA is ever accepted)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("invalid_token", "token missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenError("invalid_token", "token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError("invalid_token", "token is malformed, wrongly signed or uses another algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise TokenError("invalid_token", "token names no signing key")
    return kid


def verify(token: str, lookup: Callable[[str], Ed25519PublicKey | None]) -> dict:
    """The claims of a token signed by the key `lookup(kid)` answers; TokenError otherwise."""
    key = lookup(token_kid(token))
    if key is None:
        raise TokenError("invalid_token", "token is signed by an unknown or retired key")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["sub", "iat", "exp"]},
                            leeway=LEEWAY_SECONDS)
    except jwt.ExpiredSignatureError:
        raise TokenError("token_expired", "token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("invalid_token", "token is not valid yet") from None
    except jwt.InvalidTokenError:
        raise TokenError("invalid_token", "token is malformed, wrongly signed or uses another algorithm") from None
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("admin", False), bool):
        raise TokenError("invalid_token", "token claims have the wrong types")
    return claims


# Personal API keys (auth's api_keys.py makes and checks them): told apart from JWTs by this prefix.
API_KEY_PREFIX = "v2m_"
# What a `read` key may do: the safe methods only (the live event stream is a GET).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY_MESSAGE = "this API key is read-only: it may only read (GET, HEAD); use a full key or a login token"


API_KEY_ID_LENGTH, API_KEY_SECRET_LENGTH = 16, 43  # hex public id (64 bits); base62 secret (43 characters ≈ 256 bits)
_API_KEY = re.compile(rf"{API_KEY_PREFIX}([0-9a-f]{{{API_KEY_ID_LENGTH}}})_([A-Za-z0-9]{{{API_KEY_SECRET_LENGTH}}})")


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def parse_api_key(value: str) -> tuple[str, str] | None:
    """(public id, secret) of a well-formed key; None for anything else (the gateway asks auth about no such text)."""
    match = _API_KEY.fullmatch(value) if isinstance(value, str) and len(value) < 128 else None
    return (match[1], match[2]) if match else None


def scope_allows(scope: str, method: str) -> bool:
    """Whether a key of `scope` may make a request of `method`: full keys anything, read keys the safe methods."""
    return scope == "full" or (scope == "read" and method in SAFE_METHODS)
