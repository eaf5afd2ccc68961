"""Uploads in progress, multipart and tus alike: one record each in one collection (`uploads`).

A record's `kind` says which: `multipart` (a request body being received: its declared or real
`bytes`, `touched` whenever bytes reach storage, removed once its job exists) or `tus` (a resumable
upload: its committed `offset`, the partial last chunk `tail`, a PATCH's `lock`, `expires`; kept,
`completed`, after its job exists until it expires). Records written before `kind` existed are
multipart ones, so multipart queries say "not tus". Tus records written before `kind` are in
`tus_uploads`: the gateway at start and the janitor every round move them here (`adopt_legacy_tus`),
so an upload begun before the upgrade resumes after it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from bson import Binary
from pymongo import ReturnDocument
from pymongo.collection import Collection

from .connection import insert_new, records

MULTIPART, TUS = "multipart", "tus"
_NOT_TUS = {"kind": {"$ne": TUS}}
# Where tus records lived before they joined `uploads`; only adopted from. Remove once none is left in
# any deployment (TUS_UPLOAD_EXPIRY_SECONDS after the upgrade).
_LEGACY_TUS = "tus_uploads"


def collection() -> Collection:
    return records().uploads


def ensure_indexes() -> None:
    collection().create_index("expires")
    collection().create_index("owner")


# ---------------------------------------------------------------- multipart


def record_upload(video_id: str, owner: str, declared_bytes: int = 0) -> None:
    """Videos being received: a record from the first byte until the job exists, so the janitor can tell
    an upload a crashed gateway abandoned from one in progress. `declared_bytes` (the length the client
    announced) counts against the owner's storage quota."""
    now = time.time()
    collection().insert_one({"_id": video_id, "kind": MULTIPART, "owner": owner, "started": now, "touched": now,
                             "bytes": declared_bytes})


def set_upload_bytes(video_id: str, size: int) -> None:
    collection().update_one({"_id": video_id, **_NOT_TUS}, {"$set": {"bytes": size, "touched": time.time()}})


def touch_upload(video_id: str) -> None:
    """The upload is alive: some of its bytes just reached storage."""
    collection().update_one({"_id": video_id, **_NOT_TUS}, {"$set": {"touched": time.time()}})


def forget_upload(video_id: str) -> None:
    """Its job exists (or it failed): the multipart record goes. A tus record stays (`mark_completed`)."""
    collection().delete_one({"_id": video_id, **_NOT_TUS})


def silent_since(before: float) -> list[str]:
    """The multipart uploads no byte reached storage for since `before`."""
    return [doc["_id"] for doc in collection().find({**_NOT_TUS, "touched": {"$lt": before}}, {"_id": 1})]


def count_receiving() -> int:
    """Multipart uploads being received right now."""
    return collection().count_documents(_NOT_TUS)


# ---------------------------------------------------------------- tus


def create_tus(upload_id: str, owner: str, owner_email: str | None, length: int, filename: str, options: dict,
               job_id: str, callback_url: str | None, expires: float, outputs: list[dict] | None = None,
               preset: str | None = None) -> dict:
    doc = {"_id": upload_id, "kind": TUS, "owner": owner, "owner_email": owner_email, "length": length,
           "offset": 0, "filename": filename, "options": options, "outputs": outputs or [], "preset": preset,
           "callback_url": callback_url, "job_id": job_id,
           "completed": False, "created": time.time(), "expires": expires, "lock": None, "lock_until": 0.0,
           "headed": False, "tail": Binary(b"")}
    collection().insert_one(doc)
    return doc


def find_tus(upload_id: str, owner: str) -> dict | None:
    """The owner's tus upload (another user's id is as good as unknown)."""
    return collection().find_one({"_id": upload_id, "owner": owner, "kind": TUS})


def tus_of_job(job_id: str, owner: str) -> dict | None:
    """The tus upload that makes (or made) job `job_id`."""
    return collection().find_one({"job_id": job_id, "owner": owner, "kind": TUS})


def mark_headed(upload_id: str) -> None:
    collection().update_one({"_id": upload_id, "kind": TUS}, {"$set": {"headed": True}})


def lock_tus(upload_id: str, owner: str, offset: int, token: str, lock_seconds: float) -> dict | None:
    """Take the upload at `offset` for `token`; the upload as it was, or None (stale offset, taken, gone)."""
    now = time.time()
    return collection().find_one_and_update(
        {"_id": upload_id, "owner": owner, "kind": TUS, "offset": offset, "completed": False,
         "expires": {"$gt": now}, "lock_until": {"$lt": now}},
        {"$set": {"lock": token, "lock_until": now + lock_seconds}},
        return_document=ReturnDocument.BEFORE)


def checkpoint_tus(upload_id: str, token: str, offset: int, tail: bytes, expires: float,
                   lock_until: float) -> bool:
    """Commit `offset` and `tail` while `token` holds the lock (a `lock_until` of 0 gives it up)."""
    fields: dict = {"offset": offset, "tail": Binary(tail), "expires": expires, "headed": False,
                    "lock_until": lock_until}
    if not lock_until:
        fields["lock"] = None
    return collection().update_one({"_id": upload_id, "lock": token}, {"$set": fields}).matched_count == 1


def renew_tus_lock(upload_id: str, token: str, lock_until: float) -> bool:
    return collection().update_one({"_id": upload_id, "lock": token},
                                   {"$set": {"lock_until": lock_until}}).matched_count == 1


def unlock_tus(upload_id: str, token: str) -> None:
    collection().update_one({"_id": upload_id, "lock": token}, {"$set": {"lock": None, "lock_until": 0.0}})


def adopt_offset(upload_id: str, offset: int, new_offset: int) -> dict | None:
    """Move an unlocked upload's committed offset from `offset` to `new_offset` (its tail emptied); the
    upload as it is then, or None when it moved or is locked meanwhile."""
    return collection().find_one_and_update(
        {"_id": upload_id, "kind": TUS, "offset": offset, "lock_until": {"$lt": time.time()}},
        {"$set": {"offset": new_offset, "tail": Binary(b"")}}, return_document=ReturnDocument.AFTER)


def mark_completed(upload_id: str) -> bool:
    """The upload's job exists; True for the one caller that marked it."""
    result = collection().update_one({"_id": upload_id, "kind": TUS, "completed": False},
                                     {"$set": {"completed": True, "lock": None, "lock_until": 0.0}})
    return result.matched_count == 1


def remove_tus(upload_id: str) -> None:
    collection().delete_one({"_id": upload_id, "kind": TUS})


def expired_tus(now: float) -> list[dict]:
    """Tus uploads past their expiry."""
    return list(collection().find({"kind": TUS, "expires": {"$lt": now}}))


def adopt_legacy_tus() -> int:
    """Move the tus records of older versions into `uploads` as they are (several processes may run it at
    once: the first copy wins, and a record is removed from the old place only once it is here)."""
    legacy = records()[_LEGACY_TUS]
    moved = 0
    for record in legacy.find({}):
        insert_new(collection(), dict(record, kind=TUS))
        legacy.delete_one({"_id": record["_id"]})
        moved += 1
    return moved


def count_tus_in_progress() -> int:
    return collection().count_documents({"kind": TUS, "completed": False})


# ---------------------------------------------------------------- quota usage


@dataclass(frozen=True)
class OpenUpload:
    """An upload of a user's, as the quotas count it: `bytes` declared or received, `finished` once
    its job exists (a completed tus upload; a multipart record is gone by then)."""

    upload_id: str
    kind: str
    bytes: int
    finished: bool


def open_uploads(owner: str) -> list[OpenUpload]:
    found = []
    for doc in collection().find({"owner": owner}):
        if doc.get("kind") == TUS:
            found.append(OpenUpload(doc["_id"], TUS, doc.get("length", 0), bool(doc.get("completed"))))
        else:
            found.append(OpenUpload(doc["_id"], MULTIPART, doc.get("bytes", 0), False))
    return found
