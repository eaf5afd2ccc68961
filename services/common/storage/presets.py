"""Users' own output presets: one record per (owner, name), {owner, name, fields, created, updated}
(`fields` are option fields as text, already checked by services/common/presets.py)."""
from __future__ import annotations

import time

from pymongo.collection import Collection

from .connection import insert_new, new_id, records


def collection() -> Collection:
    return records().presets


def ensure_indexes() -> None:
    # One preset per name and owner; the index also answers every query here (all are by owner).
    collection().create_index([("owner", 1), ("name", 1)], unique=True)


def of_owner(owner: str) -> list[dict]:
    """The owner's presets, by name."""
    return sorted(collection().find({"owner": owner}), key=lambda record: record["name"])


def find(owner: str, name: str) -> dict | None:
    """The owner's preset `name` (another user's is as good as unknown)."""
    return collection().find_one({"owner": owner, "name": name})


def count(owner: str) -> int:
    # Counted by reading the ids (at most PRESETS_MAX_PER_USER): the MongoDB stand-in has no count_documents.
    return len(list(collection().find({"owner": owner}, {"_id": 1})))


def save(owner: str, name: str, fields: dict[str, str]) -> bool:
    """Store or replace the owner's preset `name`; True when it is new."""
    now = time.time()
    changed = collection().update_one({"owner": owner, "name": name}, {"$set": {"fields": fields, "updated": now}})
    if changed.matched_count:
        return False
    if insert_new(collection(), {"_id": new_id(), "owner": owner, "name": name, "fields": fields, "created": now,
                                 "updated": now}):
        return True
    # Another request of the owner's made the same name meanwhile (the unique index refused ours): replace it.
    collection().update_one({"owner": owner, "name": name}, {"$set": {"fields": fields, "updated": now}})
    return False


def remove(owner: str, name: str) -> bool:
    """Forget the owner's preset `name`; False when there was none."""
    return collection().delete_one({"owner": owner, "name": name}).deleted_count > 0
