"""JWT issuing (EdDSA, Ed25519) and the key set: the signing key plus public keys that still verify.

Rotation without downtime (README "Rotating the token signing key"): a new key is first only published
(in JWT_PUBLIC_KEYS), then signs while the old public key stays in JWT_PUBLIC_KEYS until the last token
it signed has expired. Every key's `kid` is its RFC 7638 thumbprint, so the settings name no kids.
"""
from __future__ import annotations

import functools
import logging
import re
import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat, PublicFormat,
                                                          load_pem_private_key, load_pem_public_key)

from services.common import config
from services.common.tokens import ALGORITHM, TokenError, key_id, to_jwk, verify

__all__ = ["TokenError", "issue", "jwks", "keys", "validate"]
log = logging.getLogger(__name__)
_PUBLIC_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


class KeySet:
    def __init__(self, signing: Ed25519PrivateKey, extra_public: list[Ed25519PublicKey]):
        self.signing, self.kid = signing, key_id(signing.public_key())
        self.verifying = {key_id(k): k for k in [signing.public_key(), *extra_public]}


def _pem(name: str) -> str:
    # Secret stores and env files often carry PEM with literal "\n": both forms are accepted.
    return config.env(name).replace("\\n", "\n").strip()


def _private_key() -> Ed25519PrivateKey:
    pem = _pem("JWT_PRIVATE_KEY")
    if not pem:
        if not config.env_bool("AUTH_DEV_MODE"):
            raise RuntimeError("JWT_PRIVATE_KEY must hold an Ed25519 private key in PEM "
                               "(openssl genpkey -algorithm ed25519), or AUTH_DEV_MODE=1 for local development only")
        log.warning("AUTH_DEV_MODE: signing with a key made at start; tokens do not outlive this process")
        return Ed25519PrivateKey.generate()
    key = load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError("JWT_PRIVATE_KEY must be an Ed25519 key")
    return key


def _public_keys() -> list[Ed25519PublicKey]:
    text = _pem("JWT_PUBLIC_KEYS")
    blocks = _PUBLIC_PEM.findall(text)
    if text and not blocks:
        raise RuntimeError("JWT_PUBLIC_KEYS must be PEM public keys (-----BEGIN PUBLIC KEY-----), one after another")
    loaded = [load_pem_public_key(block.encode()) for block in blocks]
    if not all(isinstance(k, Ed25519PublicKey) for k in loaded):
        raise RuntimeError("JWT_PUBLIC_KEYS must be Ed25519 public keys")
    return loaded


@functools.cache
def keys() -> KeySet:
    """The process's keys, read once (a new key set means a new rollout, as any setting change)."""
    return KeySet(_private_key(), _public_keys())


def jwks() -> dict:
    """The public keys that verify tokens (RFC 7517), for GET /.well-known/jwks.json."""
    return {"keys": [to_jwk(k) for k in keys().verifying.values()]}


def new_key_lines() -> str:
    """A new key pair in env-file form (one line each, PEM with literal \\n): the private key for
    JWT_PRIVATE_KEY, and its public key to add to JWT_PUBLIC_KEYS first (README: rotation)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return "\n".join([f"# kid {key_id(key.public_key())}", "JWT_PRIVATE_KEY=" + private.strip().replace("\n", "\\n"),
                      "JWT_PUBLIC_KEYS=" + public.strip().replace("\n", "\\n")])


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
    key_set = keys()
    return jwt.encode(claims, key_set.signing, algorithm=ALGORITHM, headers={"kid": key_set.kid})


def validate(token: str) -> dict:
    """The claims of `token` if this key set verifies it. No route serves it (the gateway verifies tokens
    itself with the published keys, gateway/jwks.py); it stays as the key set's own check, through which
    the rotation rules are tested (tests/unit/test_auth_rules.py)."""
    return verify(token, keys().verifying.get)
