"""Idempotency-Key on uploads: the same key from the same user within IDEMPOTENCY_KEY_SECONDS
answers with the first job and stores nothing new.

The key is reserved atomically before the body is read: one record per owner and key (its _id
is both, so the unique _id decides between concurrent requests). While the first request is
still receiving its body, a repeat answers 409 `idempotency_conflict` (waiting would hold a
thread for as long as the slow upload takes); once the first job exists, a repeat gets it.
A failed upload gives its key back, so the client's retry with the same key proceeds; a key
whose request died with its gateway is taken over once it is STALE_SECONDS silent. Expired
keys are ignored here and removed by the janitor (the MongoDB stand-in has no TTL indexes).
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import pymongo.errors

from . import config, storage
from .errors import Conflict, InvalidInput

HEADER = "Idempotency-Key"
# UUIDs, ULIDs, base64 and the like; anything else (spaces, control characters, huge) is a client bug
VALID_KEY = re.compile(r"[A-Za-z0-9._:~+/=-]{1,128}")
STALE_SECONDS = 120.0  # an upload touches its key at least every FLUSH_SECONDS while bytes arrive


def _keys():
    """One record per owner and key (the _id), for IDEMPOTENCY_KEY_SECONDS."""
    return storage.client()[config.env("MONGO_JOBS_DB")].idempotency_keys


@dataclass
class Reservation:
    """This request's hold on a key, until `attach` gives it its job (or `release` gives it back)."""

    record_id: str
    token: str

    def _mine(self) -> dict:
        return {"_id": self.record_id, "token": self.token}

    def touch(self) -> None:
        _keys().update_one(self._mine(), {"$set": {"touched": time.time()}})

    def attach(self, job_id: str) -> None:
        _keys().update_one(self._mine(), {"$set": {"job_id": job_id}})

    def release(self) -> None:
        """Best effort (called while another error is on its way): a key left held is taken over
        once STALE_SECONDS silent."""
        try:
            _keys().delete_one(dict(self._mine(), job_id=None))
        except pymongo.errors.PyMongoError:
            pass


def check_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not VALID_KEY.fullmatch(raw):
        raise InvalidInput("invalid_idempotency_key",
                           f"{HEADER} must be 1-128 characters of letters, digits and . _ : ~ + / = -")
    return raw


def reserve(owner: str, key: str) -> Reservation | str:
    """Hold `key` for this request (a Reservation), or the first job's id when this is a repeat."""
    now = time.time()
    record_id = f"{owner}:{key}"
    mine = {"token": secrets.token_hex(8), "created": now, "touched": now, "job_id": None}
    for _attempt in range(3):  # the first holder may give the key back between our two steps
        try:
            _keys().insert_one(dict(mine, _id=record_id, owner=owner))
            return Reservation(record_id, mine["token"])
        except pymongo.errors.DuplicateKeyError:
            pass
        first = _keys().find_one({"_id": record_id})
        if first is None:
            continue
        if first.get("created", 0) >= now - config.env_float("IDEMPOTENCY_KEY_SECONDS") and first.get("job_id"):
            return first["job_id"]
        expired = first.get("created", 0) < now - config.env_float("IDEMPOTENCY_KEY_SECONDS")
        if not (expired or first.get("touched", 0) < now - STALE_SECONDS):
            break
        # Taken over only if nobody else took it since we looked (the token changes on every take).
        taken = _keys().update_one({"_id": record_id, "token": first.get("token")},
                                                      {"$set": mine})
        if taken.matched_count == 1:
            return Reservation(record_id, mine["token"])
    raise Conflict("idempotency_conflict",
                   f"an upload with this {HEADER} is still in progress; retry once it has finished", retry_after=5)


def forget_expired(now: float) -> int:
    """Remove keys past their lifetime (the janitor's round)."""
    cutoff = now - config.env_float("IDEMPOTENCY_KEY_SECONDS")
    return _keys().delete_many({"created": {"$lt": cutoff}}).deleted_count
