"""Per-user quotas: unfinished jobs, stored bytes and uploads a day (admins are exempt).

Usage is counted from what storage holds (jobs, stored files, upload records), never from counters
that every service would have to keep right. What makes it correct with several gateway replicas
is a short per-user admission lease in MongoDB (a conditional update): the check and the upload's
reservation (its upload record, at its declared length) happen under it, so two replicas cannot
both admit the upload that crosses a limit (converters take the same lease to reserve a result's
predicted size: services/converter/output_limit.py). Uploads started in the last 24 h are kept in the same
per-user document; an upload that fails still counts (it was started).

For any upload protocol: `admit` before the body is read, `confirm` once its real length is known.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict
from typing import Iterator

from opentelemetry import trace

from services.common import ratelimit
from services.common.errors import QuotaExceeded, TooBusy
from services.common.quota_usage import DAY, QuotaBusy, Usage, leased, limits, recent, record_start, usage
from services.common.storage import uploads
from services.common.storage.connection import new_id

from . import metrics

log = logging.getLogger(__name__)
ACTIVE_RETRY_AFTER = 30  # jobs finish within minutes; a retry after this may fit
# Stored bytes free up when a running job's reservation shrinks to its real result, or at once when the
# user deletes jobs; waiting alone frees them only at the pace of jobs ending, as for active jobs.
STORED_RETRY_AFTER = ACTIVE_RETRY_AFTER


@contextmanager
def _leased(owner: str) -> Iterator[dict]:
    """The owner's admission lease (services/common/quota_usage.py); TooBusy when another holds it too long."""
    try:
        with leased(owner) as account:
            yield account
    except QuotaBusy:
        raise TooBusy("too_busy", "your other uploads are being admitted; retry shortly", retry_after=2) from None


def _refuse(limit: str, message: str, retry_after: int | None = None) -> QuotaExceeded:
    metrics.QUOTA_REJECTIONS.labels(limit).inc()
    trace.get_current_span().set_attribute("vid2mp3.quota_exceeded", limit)
    log.info("upload refused by quota", extra={"limit": limit, "reason": message})
    return QuotaExceeded("quota_exceeded", message, retry_after)


def _check_stored(used: Usage, cap: Usage, adding: int) -> None:
    if used.stored_bytes + adding > cap.stored_bytes:
        raise _refuse("stored_bytes", f"storage quota exceeded: {used.stored_bytes} bytes stored (videos, MP3s and "
                      f"uploads in progress) + {adding} would pass the limit of {cap.stored_bytes} bytes "
                      "(USER_MAX_STORED_BYTES); delete jobs you no longer need", STORED_RETRY_AFTER)


def _check(used: Usage, started: list[float], cap: Usage, declared_bytes: int) -> None:
    if used.active_jobs >= cap.active_jobs:
        raise _refuse("active_jobs", f"too many unfinished jobs: {used.active_jobs} of {cap.active_jobs} allowed "
                      "(USER_MAX_ACTIVE_JOBS); wait for one to finish", ACTIVE_RETRY_AFTER)
    if len(started) >= cap.uploads_24h:
        raise _refuse("uploads_per_day", f"daily upload quota exceeded: {len(started)} uploads in the last 24 hours "
                      f"of {cap.uploads_24h} allowed (USER_MAX_UPLOADS_PER_DAY)", max(_day_frees_in(started[0]), 1))
    _check_stored(used, cap, declared_bytes)


def _day_frees_in(oldest: float) -> int:
    """Seconds until the upload made at `oldest` leaves the sliding day and frees a place."""
    return int(oldest + DAY - time.time()) + 1


def _standings(used: Usage, started: list[float], cap: Usage, admitted: bool) -> list[ratelimit.Standing]:
    """The caller's standing in the limits that count uploads, after this one (the RateLimit headers).
    The day is a sliding window: t is when its oldest upload leaves it and one more is allowed."""
    taken, now = (1 if admitted else 0), time.time()
    oldest = started[0] if started else now if admitted else None  # this upload is the window's first
    next_back = _day_frees_in(oldest) if oldest is not None else 0
    return [ratelimit.Standing("active_jobs", cap.active_jobs, cap.active_jobs - used.active_jobs - taken,
                               unit="concurrent-requests"),
            ratelimit.Standing("uploads_per_day", cap.uploads_24h, cap.uploads_24h - len(started) - taken,
                               int(DAY), max(next_back, 0))]


def admit(user: dict, declared_bytes: int, reserve=None) -> str:
    """Admit an upload of `declared_bytes` (Content-Length or Upload-Length; 0 when unknown) for the
    user, or raise QuotaExceeded (quota_exceeded). Returns the upload's id, reserved under the lease by
    `reserve(upload_id)` (default: an upload record, storage/uploads.py's record_upload, at the declared length;
    tus passes the creation of its upload) so that it counts until its job exists."""
    upload_id, owner = new_id(), user["sub"]
    reserve = reserve or (lambda upload: uploads.record_upload(upload, owner, declared_bytes))
    if user.get("admin"):
        reserve(upload_id)
        return upload_id
    with _leased(owner) as account:
        started, used, cap = recent(account), usage(owner, account=account), limits()
        try:
            _check(used, started, cap, declared_bytes)
        except QuotaExceeded:
            ratelimit.report(*_standings(used, started, cap, admitted=False))
            raise
        ratelimit.report(*_standings(used, started, cap, admitted=True))
        reserve(upload_id)
        record_start(owner, started)
    return upload_id


def confirm(user: dict, upload_id: str, size: int) -> None:
    """The upload is complete at `size` bytes: check the storage quota again with the real size (a
    client may not have declared one) and keep the reservation at that size, or raise QuotaExceeded."""
    if user.get("admin"):
        uploads.set_upload_bytes(upload_id, size)
        return
    with _leased(user["sub"]) as account:
        _check_stored(usage(user["sub"], excluding=upload_id, account=account), limits(), size)
        uploads.set_upload_bytes(upload_id, size)


def overview(user: dict) -> dict:
    """The caller's usage and limits (GET /me)."""
    cap = None if user.get("admin") else asdict(limits())
    return {"usage": asdict(usage(user["sub"])), "limits": cap}
