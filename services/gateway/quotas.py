"""Per-user quotas: unfinished jobs, stored bytes and uploads a day (admins are exempt).

Usage is counted from what storage holds (jobs, stored files, upload records), never from counters
that every service would have to keep right. What makes it correct with several gateway replicas
is a short per-user admission lease in MongoDB (a conditional update): the check and the upload's
reservation (its upload record, at its declared length) happen under it, so two replicas cannot
both admit the upload that crosses a limit. Uploads started in the last 24 h are kept in the same
per-user document; an upload that fails still counts (it was started).

For any upload protocol: `admit` before the body is read, `confirm` once its real length is known.
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

import pymongo.errors
from pymongo import ReturnDocument

from services.common import config, resumable, storage
from services.common.jobs import ACTIVE
from services.common.web import ApiError

from . import metrics

DAY = 86400
LEASE_SECONDS = 10  # a gateway that dies holding the lease blocks its user's uploads this long at most
LEASE_WAIT_SECONDS = 5
ACTIVE_RETRY_AFTER = "30"  # jobs finish within minutes; a retry after this may fit


@dataclass
class Usage:
    active_jobs: int = 0
    stored_bytes: int = 0
    uploads_24h: int = 0


def limits() -> Usage:
    return Usage(config.env_int("USER_MAX_ACTIVE_JOBS"), config.env_int("USER_MAX_STORED_BYTES"),
                 config.env_int("USER_MAX_UPLOADS_PER_DAY"))


def _accounts():
    return storage.client()[config.env("MONGO_JOBS_DB")].quota_usage


def _stored_lengths(bucket: storage.Bucket, ids: list) -> int:
    return sum(doc.get("length", 0) for doc in bucket.files.find({"_id": {"$in": ids}})) if ids else 0


def usage(owner: str, excluding: str | None = None) -> Usage:
    """The owner's usage now; the upload `excluding` (the one being confirmed) left out."""
    active, videos, mp3s = 0, [], []
    for doc in storage.jobs().find({"owner": owner}, {"status": 1, "video_id": 1, "mp3_id": 1}):
        active += doc.get("status") in ACTIVE
        videos += [doc["video_id"]] if doc.get("video_id") else []
        mp3s += [doc["mp3_id"]] if doc.get("mp3_id") else []
    stored = _stored_lengths(storage.videos(), videos) + _stored_lengths(storage.mp3s(), mp3s)
    for upload in storage.uploads().find({"owner": owner}):
        if upload["_id"] != excluding and upload["_id"] not in videos:
            active += 1
            stored += upload.get("bytes", 0)
    for upload in resumable.collection().find({"owner": owner, "completed": False}):
        active += 1  # an unfinished tus upload, counted at its declared length
        stored += upload.get("length", 0)
    account = _accounts().find_one({"_id": owner}) or {}
    return Usage(active, stored, len(_recent(account)))


def _recent(account: dict) -> list[float]:
    now = time.time()
    return sorted(t for t in account.get("started", []) if t > now - DAY)


@contextmanager
def _leased(owner: str) -> Iterator[dict]:
    """Hold the owner's admission lease (waiting a little for another replica's) while checking."""
    accounts, token = _accounts(), storage.new_id()
    try:
        accounts.update_one({"_id": owner}, {"$setOnInsert": {"lease_until": 0.0, "started": []}}, upsert=True)
    except pymongo.errors.DuplicateKeyError:
        pass  # another replica created it at the same moment
    give_up = time.monotonic() + LEASE_WAIT_SECONDS
    while True:
        now = time.time()
        account = accounts.find_one_and_update({"_id": owner, "lease_until": {"$lt": now}},
                                               {"$set": {"lease_until": now + LEASE_SECONDS, "holder": token}},
                                               return_document=ReturnDocument.AFTER)
        if account is not None:
            break
        if time.monotonic() > give_up:
            raise ApiError(503, "too_busy", "your other uploads are being admitted; retry shortly", {"Retry-After": "2"})
        time.sleep(random.uniform(0.01, 0.05))
    try:
        yield account
    finally:
        accounts.update_one({"_id": owner, "holder": token}, {"$set": {"lease_until": 0.0}})


def _refuse(limit: str, message: str, retry_after: str | None = None) -> ApiError:
    metrics.QUOTA_REJECTIONS.labels(limit).inc()
    return ApiError(429, "quota_exceeded", message, {"Retry-After": retry_after} if retry_after else {})


def _check_stored(used: Usage, cap: Usage, adding: int) -> None:
    if used.stored_bytes + adding > cap.stored_bytes:
        raise _refuse("stored_bytes", f"storage quota exceeded: {used.stored_bytes} bytes stored (videos, MP3s and "
                      f"uploads in progress) + {adding} would pass the limit of {cap.stored_bytes} bytes "
                      "(USER_MAX_STORED_BYTES); delete jobs you no longer need")


def _check(used: Usage, started: list[float], cap: Usage, declared_bytes: int) -> None:
    if used.active_jobs >= cap.active_jobs:
        raise _refuse("active_jobs", f"too many unfinished jobs: {used.active_jobs} of {cap.active_jobs} allowed "
                      "(USER_MAX_ACTIVE_JOBS); wait for one to finish", ACTIVE_RETRY_AFTER)
    if len(started) >= cap.uploads_24h:
        wait = int(started[0] + DAY - time.time()) + 1
        raise _refuse("uploads_per_day", f"daily upload quota exceeded: {len(started)} uploads in the last 24 hours "
                      f"of {cap.uploads_24h} allowed (USER_MAX_UPLOADS_PER_DAY)", str(max(wait, 1)))
    _check_stored(used, cap, declared_bytes)


def admit(user: dict, declared_bytes: int, reserve=None) -> str:
    """Admit an upload of `declared_bytes` (Content-Length or Upload-Length; 0 when unknown) for the
    user, or raise 429 quota_exceeded. Returns the upload's id, reserved under the lease by
    `reserve(upload_id)` (default: an upload record, storage.record_upload, at the declared length;
    tus passes the creation of its upload) so that it counts until its job exists."""
    upload_id, owner = storage.new_id(), user["sub"]
    reserve = reserve or (lambda new_id: storage.record_upload(new_id, owner, declared_bytes))
    if user.get("admin"):
        reserve(upload_id)
        return upload_id
    with _leased(owner) as account:
        started = _recent(account)
        _check(usage(owner), started, limits(), declared_bytes)
        reserve(upload_id)
        _accounts().update_one({"_id": owner}, {"$set": {"started": started + [time.time()]}})
    return upload_id


def confirm(user: dict, upload_id: str, size: int) -> None:
    """The upload is complete at `size` bytes: check the storage quota again with the real size (a
    client may not have declared one) and keep the reservation at that size, or raise 429."""
    if user.get("admin"):
        storage.set_upload_bytes(upload_id, size)
        return
    with _leased(user["sub"]):
        _check_stored(usage(user["sub"], excluding=upload_id), limits(), size)
        storage.set_upload_bytes(upload_id, size)


def overview(user: dict) -> dict:
    """The caller's usage and limits (GET /me)."""
    cap = None if user.get("admin") else asdict(limits())
    return {"usage": asdict(usage(user["sub"])), "limits": cap}
