"""Each user's webhook signing secret (Standard Webhooks `whsec_<base64>`), kept in MongoDB.

Created on first need (the first delivery, or the first time the user looks at it), replaced
by a rotation; a delivery signs with whatever secret is current at that attempt.
"""
from __future__ import annotations

import base64
import secrets

from .storage import webhook_secrets as secret_records

PREFIX = "whsec_"
SECRET_BYTES = 32  # 256 bits, as HMAC-SHA256's key


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_secret_of(owner: str) -> str:
    """The user's current secret, created if they have none yet (two racing creators agree on one)."""
    found = secret_records.secret_of(owner)
    if found:
        return found
    mine = new_secret()
    if secret_records.add_secret(owner, mine):
        return mine
    theirs = secret_records.secret_of(owner)  # another process created one first: theirs counts
    if theirs is None:  # created and removed again in between (the account is being deleted)
        raise LookupError(f"no webhook secret for {owner}")
    return theirs


def rotate(owner: str) -> str:
    """Replace the user's secret with a new one; the old one stops signing at once."""
    secret = new_secret()
    secret_records.replace_secret(owner, secret)
    return secret


def key_of(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for."""
    return base64.b64decode(secret.removeprefix(PREFIX))
