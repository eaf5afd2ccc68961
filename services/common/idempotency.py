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

from . import config
from .errors import Conflict, InvalidInput
from .storage import idempotency_keys
from .storage.errors import StorageError

HEADER = "Idempotency-Key"
# UUIDs, ULIDs, base64 and the like; anything else (spaces, control characters, huge) is a client bug
VALID_KEY = re.compile(r"[A-Za-z0-9._:~+/=-]{1,128}")
STALE_SECONDS = 120.0  # an upload touches its key at least every FLUSH_SECONDS while bytes arrive


@dataclass
class Reservation:
    """This request's hold on a key, until `attach` gives it its job (or `release` gives it back)."""

    record_id: str
    token: str

    def touch(self) -> None:
        idempotency_keys.touch(self.record_id, self.token, time.time())

    def attach(self, job_id: str) -> None:
        idempotency_keys.attach_job(self.record_id, self.token, job_id)

    def release(self) -> None:
        """Best effort (called while another error is on its way): a key left held is taken over
        once STALE_SECONDS silent."""
        try:
            idempotency_keys.give_back(self.record_id, self.token)
        except StorageError:
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
    record_id = idempotency_keys.record_id(owner, key)
    token = secrets.token_hex(8)
    for _attempt in range(3):  # the first holder may give the key back between our two steps
        if idempotency_keys.insert_key(record_id, owner, token, now):
            return Reservation(record_id, token)
        first = idempotency_keys.find_key(record_id)
        if first is None:
            continue
        decision = repeat_decision(first, now, config.env_float("IDEMPOTENCY_KEY_SECONDS"))
        if decision == "replay":
            return first["job_id"]
        if decision == "wait":
            break
        # Taken over only if nobody else took it since we looked (the token changes on every take).
        if idempotency_keys.take_over(record_id, first.get("token"), token, now):
            return Reservation(record_id, token)
    raise Conflict("idempotency_conflict",
                   f"an upload with this {HEADER} is still in progress; retry once it has finished", retry_after=5)


def repeat_decision(first: dict, now: float, lifetime: float) -> str:
    """What a request does about a key another request holds (`first`, its record): `replay` its job,
    `take` it over (expired, or its request died: STALE_SECONDS silent), or `wait` (still receiving)."""
    expired = first.get("created", 0) < now - lifetime
    if not expired and first.get("job_id"):
        return "replay"
    if expired or first.get("touched", 0) < now - STALE_SECONDS:
        return "take"
    return "wait"


def forget_expired(now: float) -> int:
    """Remove keys past their lifetime (the janitor's round)."""
    return idempotency_keys.forget_created_before(now - config.env_float("IDEMPOTENCY_KEY_SECONDS"))
