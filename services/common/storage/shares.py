"""Leases on releasing a shared result (dedup, services/common/sharing.py): one record per result file while a
remover decides. Kept beside the files, not on them: the MongoDB stand-in's fs.files takes no fields of ours."""
from __future__ import annotations

from pymongo.collection import Collection

from .connection import insert_new, records


def collection() -> Collection:
    return records().mp3_release_leases


def insert_lease(result_id: str, holder: str, until: float) -> bool:
    """Take a free lease; False when a record of it exists (live or not)."""
    return insert_new(collection(), {"_id": result_id, "holder": holder, "until": until})


def find_lease(result_id: str) -> dict | None:
    """The lease's record: holder, until."""
    return collection().find_one({"_id": result_id})


def take_over_lease(result_id: str, old_holder: str | None, holder: str, until: float) -> bool:
    """Take a dead remover's lease, unless someone was quicker."""
    taken = collection().update_one({"_id": result_id, "holder": old_holder},
                                    {"$set": {"holder": holder, "until": until}})
    return taken.matched_count == 1


def drop_lease(result_id: str, holder: str) -> None:
    collection().delete_one({"_id": result_id, "holder": holder})
