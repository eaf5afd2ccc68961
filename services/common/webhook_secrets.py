"""Each user's webhook signing secret (Standard Webhooks `whsec_<base64>`), kept in MongoDB.

Created on first need (the first delivery, or the first time the user looks at it), replaced
by a rotation; a delivery signs with whatever secret is current at that attempt.
"""
from __future__ import annotations

import base64
import secrets

import pymongo.errors

from . import storage

PREFIX = "whsec_"
SECRET_BYTES = 32  # 256 bits, as HMAC-SHA256's key


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_secret_of(owner: str) -> str:
    """The user's current secret, created if they have none yet (two racing creators agree on one)."""
    found = storage.webhook_secrets().find_one({"_id": owner})
    if found:
        return found["secret"]
    try:
        storage.webhook_secrets().insert_one({"_id": owner, "secret": new_secret()})
    except pymongo.errors.DuplicateKeyError:
        pass  # another process created it first: theirs is the one
    return storage.webhook_secrets().find_one({"_id": owner})["secret"]


def rotate(owner: str) -> str:
    """Replace the user's secret with a new one; the old one stops signing at once."""
    secret = new_secret()
    storage.webhook_secrets().update_one({"_id": owner}, {"$set": {"secret": secret}}, upsert=True)
    return secret


def key_of(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for."""
    return base64.b64decode(secret.removeprefix(PREFIX))
