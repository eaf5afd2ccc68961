"""The notification ledger: one record per email and per webhook of an ended job, so neither is sent
twice. Keys are built by `ledger_key` only.

An email's record: `sending` (an intent, with its worker and lease) then `sent`; records written before
intents existed have no state and mean sent. A webhook's: `queued` (on WEBHOOK_QUEUE), then `delivered`.
"""
from __future__ import annotations

import time
from typing import Iterable

from pymongo.collection import Collection

from .connection import insert_new, records

SENT, SENDING = "sent", "sending"
QUEUED, DELIVERED = "queued", "delivered"


def collection() -> Collection:
    return records().notifications


def ledger_key(job_id: str, status: str, webhook: bool = False) -> str:
    """`<job>:<status>` for the email of a job's end, `<job>:<status>:webhook` for its webhook."""
    return f"{job_id}:{status}:webhook" if webhook else f"{job_id}:{status}"


def forget_job(job_id: str, statuses: Iterable[str]) -> None:
    """Remove the records of a deleted job (its emails and webhooks of every end)."""
    keys = [ledger_key(job_id, str(status), webhook) for status in statuses for webhook in (False, True)]
    collection().delete_many({"_id": {"$in": keys}})


# ---------------------------------------------------------------- emails


def email_sent(key: str) -> bool:
    record = collection().find_one({"_id": key}, {"state": 1})
    return record is not None and record.get("state", SENT) == SENT


def claim_email(key: str, job_id: str, status: str, worker: str, lease_seconds: float) -> bool | None:
    """Record `worker`'s intent to send: True when taken (new, its own from a failed try, or a dead
    worker's), False once it is sent, None while another live worker holds it."""
    now = time.time()
    mine = {"state": SENDING, "worker": worker, "until": now + lease_seconds}
    if insert_new(collection(), dict(mine, _id=key, job_id=job_id, status=status)):
        return True
    record = collection().find_one({"_id": key}) or {}
    if record.get("state", SENT) == SENT:
        return False
    if record.get("worker") == worker or record.get("until", 0) < now:
        taken = collection().update_one({"_id": key, "state": SENDING, "worker": record.get("worker"),
                                         "until": record.get("until")}, {"$set": mine})
        if taken.matched_count == 1:
            return True
    return None


def drop_email_intent(key: str, worker: str) -> None:
    collection().delete_one({"_id": key, "state": SENDING, "worker": worker})


def record_email_sent(key: str) -> None:
    collection().update_one({"_id": key}, {"$set": {"state": SENT, "sent_at": time.time()},
                                           "$unset": {"until": ""}}, upsert=True)


# ---------------------------------------------------------------- webhooks


def webhook_known(key: str) -> bool:
    """Queued or delivered already."""
    return collection().find_one({"_id": key}, {"_id": 1}) is not None


def record_webhook_queued(key: str, job_id: str) -> None:
    collection().insert_one({"_id": key, "state": QUEUED, "job_id": job_id})


def webhook_delivered(key: str) -> bool:
    return collection().find_one({"_id": key, "state": DELIVERED}, {"_id": 1}) is not None


def record_webhook_delivered(key: str, job_id: str) -> None:
    collection().update_one({"_id": key}, {"$set": {"state": DELIVERED, "job_id": job_id}}, upsert=True)
