"""Tombstones of deleted jobs: a message still on its way for one is dropped, not taken for poison."""
from __future__ import annotations

import time

from pymongo.collection import Collection

from .connection import records

TOMBSTONE_SECONDS = 7 * 86400  # longer than any message waits in a queue


def collection() -> Collection:
    return records().deleted_jobs


def record_deletion(job_id: str) -> None:
    collection().update_one({"_id": job_id}, {"$set": {"deleted_at": time.time()}}, upsert=True)


def was_deleted(job_id: str) -> bool:
    return collection().find_one({"_id": job_id}, {"_id": 1}) is not None


def forget_old_tombstones(now: float) -> int:
    return collection().delete_many({"deleted_at": {"$lt": now - TOMBSTONE_SECONDS}}).deleted_count
