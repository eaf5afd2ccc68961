"""What one user has stored and started, and the per-user admission lease: the pure part of the quotas,
shared by the gateway (uploads, services/gateway/quotas.py) and the converter (results,
services/converter/output_limit.py). No web framework here: the callers turn `QuotaBusy` into their
own answer (503, a retry).

Usage is counted from what storage holds (jobs, stored files, upload records), never from counters.
A job being converted counts at the bytes its converter reserved for the result (`output_reserved`,
its predicted upper bound), so two conversions of one user cannot both take the last of the quota.
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pymongo.errors
from pymongo import ReturnDocument

from . import config, resumable, storage
from .jobs import ACTIVE, Status

DAY = 86400
LEASE_SECONDS = 10  # a process that dies holding the lease blocks its user's admissions this long at most
LEASE_WAIT_SECONDS = 5


class QuotaBusy(Exception):
    """Another process holds the user's admission lease for longer than we wait."""


@dataclass
class Usage:
    active_jobs: int = 0
    stored_bytes: int = 0
    uploads_24h: int = 0


def limits() -> Usage:
    return Usage(config.env_int("USER_MAX_ACTIVE_JOBS"), config.env_int("USER_MAX_STORED_BYTES"),
                 config.env_int("USER_MAX_UPLOADS_PER_DAY"))


def accounts():
    return storage.client()[config.env("MONGO_JOBS_DB")].quota_usage


def _stored_lengths(bucket: storage.Bucket, ids: list) -> int:
    return sum(doc.get("length", 0) for doc in bucket.files.find({"_id": {"$in": ids}})) if ids else 0


def usage(owner: str, excluding: str | None = None, excluding_job: str | None = None) -> Usage:
    """The owner's usage now; the upload `excluding` (the one being confirmed) and the reservation of
    `excluding_job` (the one being admitted again) left out."""
    active, videos, mp3s, reserved = 0, [], [], 0
    for doc in storage.jobs().find({"owner": owner}, {"status": 1, "video_id": 1, "mp3_id": 1, "output_reserved": 1}):
        active += doc.get("status") in ACTIVE
        videos += [doc["video_id"]] if doc.get("video_id") else []
        mp3s += [doc["mp3_id"]] if doc.get("mp3_id") else []
        if doc.get("status") == Status.CONVERTING and doc["_id"] != excluding_job:
            reserved += doc.get("output_reserved") or 0  # its result, while being written
    stored = _stored_lengths(storage.videos(), videos) + _stored_lengths(storage.mp3s(), mp3s) + reserved
    for upload in storage.uploads().find({"owner": owner}):
        if upload["_id"] != excluding and upload["_id"] not in videos:
            active += 1
            stored += upload.get("bytes", 0)
    for upload in resumable.collection().find({"owner": owner, "completed": False}):
        active += 1  # an unfinished tus upload, counted at its declared length
        stored += upload.get("length", 0)
    account = accounts().find_one({"_id": owner}) or {}
    return Usage(active, stored, len(recent(account)))


def recent(account: dict) -> list[float]:
    """The account's upload start times of the last 24 hours, oldest first."""
    now = time.time()
    return sorted(t for t in account.get("started", []) if t > now - DAY)


@contextmanager
def leased(owner: str) -> Iterator[dict]:
    """Hold the owner's admission lease (waiting a little for another process's) while checking and
    reserving: gateways admitting uploads and converters admitting results take turns per user."""
    collection, token = accounts(), storage.new_id()
    try:
        collection.update_one({"_id": owner}, {"$setOnInsert": {"lease_until": 0.0, "started": []}}, upsert=True)
    except pymongo.errors.DuplicateKeyError:
        pass  # another process created it at the same moment
    give_up = time.monotonic() + LEASE_WAIT_SECONDS
    while True:
        now = time.time()
        account = collection.find_one_and_update({"_id": owner, "lease_until": {"$lt": now}},
                                                 {"$set": {"lease_until": now + LEASE_SECONDS, "holder": token}},
                                                 return_document=ReturnDocument.AFTER)
        if account is not None:
            break
        if time.monotonic() > give_up:
            raise QuotaBusy(owner)
        time.sleep(random.uniform(0.01, 0.05))  # a lease is held for a few queries: poll briefly
    try:
        yield account
    finally:
        collection.update_one({"_id": owner, "holder": token}, {"$set": {"lease_until": 0.0}})
