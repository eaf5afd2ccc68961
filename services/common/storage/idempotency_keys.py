"""Idempotency-Key records: one per owner and key (the _id), holding the first request's token and job."""
from __future__ import annotations

from pymongo.collection import Collection

from .connection import insert_new, records


def collection() -> Collection:
    return records().idempotency_keys


def record_id(owner: str, key: str) -> str:
    return f"{owner}:{key}"


def insert_key(record: str, owner: str, token: str, now: float) -> bool:
    """Hold a new key for `token`; False when a record of it exists."""
    return insert_new(collection(), {"_id": record, "owner": owner, "token": token, "created": now, "touched": now,
                                     "job_id": None})


def find_key(record: str) -> dict | None:
    """The key's record: token, created, touched, job_id."""
    return collection().find_one({"_id": record})


def take_over(record: str, old_token: str | None, token: str, now: float) -> bool:
    """Hold an expired or stale key for `token`, unless someone else took it since it was read."""
    taken = collection().update_one({"_id": record, "token": old_token},
                                    {"$set": {"token": token, "created": now, "touched": now, "job_id": None}})
    return taken.matched_count == 1


def touch(record: str, token: str, now: float) -> None:
    collection().update_one({"_id": record, "token": token}, {"$set": {"touched": now}})


def attach_job(record: str, token: str, job_id: str) -> None:
    collection().update_one({"_id": record, "token": token}, {"$set": {"job_id": job_id}})


def give_back(record: str, token: str) -> None:
    """Drop a held key that has no job yet."""
    collection().delete_one({"_id": record, "token": token, "job_id": None})


def forget_created_before(cutoff: float) -> int:
    return collection().delete_many({"created": {"$lt": cutoff}}).deleted_count
