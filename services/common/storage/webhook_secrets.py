"""Each user's webhook signing secret: one record per user, {_id: owner, secret: "whsec_…"}."""
from __future__ import annotations

from pymongo.collection import Collection

from .connection import insert_new, records


def collection() -> Collection:
    return records().webhook_secrets


def secret_of(owner: str) -> str | None:
    found = collection().find_one({"_id": owner})
    return found["secret"] if found else None


def add_secret(owner: str, secret: str) -> bool:
    """Store the user's first secret; False when they have one already (another process was quicker)."""
    return insert_new(collection(), {"_id": owner, "secret": secret})


def replace_secret(owner: str, secret: str) -> None:
    collection().update_one({"_id": owner}, {"$set": {"secret": secret}}, upsert=True)
