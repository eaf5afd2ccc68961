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

from . import config
from .jobs import ACTIVE, Status
from .storage import files, job_records, quota_accounts, uploads
from .storage.connection import new_id
from .storage.job_records import Holding
from .storage.uploads import TUS, OpenUpload

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


def usage(owner: str, excluding: str | None = None, excluding_job: str | None = None,
          account: dict | None = None) -> Usage:
    """The owner's usage now; the upload `excluding` (the one being confirmed) and the reservation of
    `excluding_job` (the one being admitted again) left out. `account`: the owner's account as `leased`
    gave it (the lease holder's copy is current: only lease holders change it), else read here."""
    held = job_records.holdings(owner)
    video_bytes = files.total_length(files.videos(), [h.video_id for h in held if h.video_id])
    result_bytes = files.total_length(files.results(), [f for h in held for f in h.result_ids])
    started = recent(account if account is not None else quota_accounts.account_of(owner))
    return tally(held, uploads.open_uploads(owner), video_bytes + result_bytes, started, excluding, excluding_job)


def tally(held: list[Holding], open_uploads: list[OpenUpload], file_bytes: int, started: list[float],
          excluding: str | None = None, excluding_job: str | None = None) -> Usage:
    """Usage from what storage holds (pure): the owner's jobs, the bytes of their stored files, their
    uploads in progress and their recent upload starts."""
    active = sum(h.status in ACTIVE for h in held)
    # A converting job's result counts at what its converter reserved, while being written.
    reserved = sum(h.output_reserved for h in held if h.status == Status.CONVERTING and h.job_id != excluding_job)
    videos = {h.video_id for h in held if h.video_id}
    stored = file_bytes + reserved
    for upload in open_uploads:
        if upload.kind == TUS:
            # an unfinished tus upload, at its declared length; once its job exists (the upload's id is the
            # job's video) the job counts it, also in the moment before the upload is marked completed
            counted = not upload.finished and upload.upload_id not in videos
        else:  # a multipart one until its job exists (or the one being confirmed)
            counted = upload.upload_id != excluding and upload.upload_id not in videos
        active += counted
        stored += upload.bytes if counted else 0
    return Usage(active, stored, len(started))


def recent(account: dict) -> list[float]:
    """The account's upload start times of the last 24 hours, oldest first."""
    now = time.time()
    return sorted(t for t in account.get("started", []) if t > now - DAY)


@contextmanager
def leased(owner: str) -> Iterator[dict]:
    """Hold the owner's admission lease (waiting a little for another process's) while checking and
    reserving: gateways admitting uploads and converters admitting results take turns per user."""
    token = new_id()
    give_up = time.monotonic() + LEASE_WAIT_SECONDS
    created = False
    while True:
        now = time.time()
        account = quota_accounts.take_lease(owner, token, now, now + LEASE_SECONDS)
        if account is not None:
            break
        if not created:  # a user's first admission: no account to lease yet (else it is held: wait)
            quota_accounts.ensure_account(owner)
            created = True
            continue
        if time.monotonic() > give_up:
            raise QuotaBusy(owner)
        time.sleep(random.uniform(0.01, 0.05))  # a lease is held for a few queries: poll briefly
    try:
        yield account
    finally:
        quota_accounts.give_back_lease(owner, token)


def record_start(owner: str, started: list[float]) -> None:
    """Add an upload start (now) to `started`, the account's recent ones read under the lease."""
    quota_accounts.set_started(owner, started + [time.time()])
