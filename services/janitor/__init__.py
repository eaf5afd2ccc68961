"""The janitor: removes what retention says is due, and what crashes left behind.

One round (`run_once`):
- the source video of every job that ended VIDEO_RETENTION_SECONDS ago; a failed or cancelled
  job has no other file, so it turns `expired` then;
- the MP3 of every job done RESULT_RETENTION_SECONDS ago, which turns `expired` (an MP3 other
  jobs share, dedup, stays until the last of them expires: services/common/sharing.py);
- Idempotency-Keys older than IDEMPOTENCY_KEY_SECONDS;
- uploads a crashed gateway abandoned (an upload record with no job and no new bytes for
  JANITOR_GRACE_SECONDS), and MP3s a crashed converter left half-written for a job that
  no converter holds any more;
- unfinished resumable (tus) uploads past their expiry (TUS_UPLOAD_EXPIRY_SECONDS after their last
  PATCH), bytes and record; finished ones' records once the same time has passed (their job owns the bytes);
- temp folders of converters that died (where the janitor shares their disk).

Every removal is recorded with a conditional update after the file is gone: two janitors at once
count nothing twice, a round killed half-way leaves nothing behind, and nothing a live job needs
matches the queries. The round's totals go to the
`janitor` collection, which the gateway exposes as metrics (a CronJob's process is gone before
any scrape).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from services.common import config, idempotency, resumable, sharing, storage, workdirs
from services.common.jobs import ENDED, Status

log = logging.getLogger(__name__)


@dataclass
class Round:
    removed: Counter = field(default_factory=Counter)  # files removed, by reason
    expired: int = 0  # jobs turned expired


def run_once(now: float | None = None) -> Round:
    now = time.time() if now is None else now
    tally = Round()
    remove_old_videos(now, tally)
    remove_old_results(now, tally)
    remove_abandoned_uploads(now, tally)
    remove_abandoned_mp3s(tally)
    remove_expired_tus_uploads(now, tally)
    storage.forget_old_tombstones(now)
    idempotency.forget_expired(now)
    if config.env("WORK_DIR"):  # only where it shares the converters' disk and pids (the local stack)
        tally.removed["stale_work_dir"] += workdirs.clean_stale()
    record(tally, now)
    log.info("janitor round", extra={"removed": dict(tally.removed), "expired": tally.expired})
    return tally


def remove_old_videos(now: float, tally: Round) -> None:
    cutoff = now - config.env_float("VIDEO_RETENTION_SECONDS")
    for job in storage.find_jobs({"ended_at": {"$lt": cutoff}, "video_removed": {"$in": [False, None]}}):
        # Removed first, claimed after: a round killed in between leaves nothing behind (the next
        # round removes nothing again and claims it); of two janitors only the claimer counts it.
        storage.delete_file(storage.videos(), job.video_id)
        if not storage.claim_video_removal(job.id):
            continue
        tally.removed["video_retention"] += 1
        if job.status in (Status.FAILED, Status.CANCELLED) and storage.expire_job(job.id, job.status):
            tally.expired += 1


def remove_old_results(now: float, tally: Round) -> None:
    cutoff = now - config.env_float("RESULT_RETENTION_SECONDS")
    for job in storage.find_jobs({"status": Status.DONE, "ended_at": {"$lt": cutoff}}):
        removed = False
        if job.mp3_id:
            try:  # first, as for videos; kept while another job shares it (dedup)
                removed = sharing.release(job.mp3_id, job.id)
            except TimeoutError:
                continue  # another remover holds it: the next round
        if not storage.expire_job(job.id, Status.DONE):
            continue
        tally.expired += 1
        tally.removed["result_retention"] += removed


def remove_abandoned_uploads(now: float, tally: Round) -> None:
    """An upload is alive while its bytes keep reaching storage (FileWriter touches its record at
    least every FLUSH_SECONDS while a chunk a while arrives); one silent for the grace period is not."""
    grace = config.env_float("JANITOR_GRACE_SECONDS")
    for upload in storage.uploads().find({"touched": {"$lt": now - grace}}):
        video_id = upload["_id"]
        if storage.find_job({"video_id": video_id}) is None:
            storage.delete_file(storage.videos(), video_id)
            tally.removed["abandoned_upload"] += 1
        storage.forget_upload(video_id)


def remove_expired_tus_uploads(now: float, tally: Round) -> None:
    """A tus upload whose client stopped for TUS_UPLOAD_EXPIRY_SECONDS will not come back (a PATCH
    holding it keeps pushing `expires` forward, so a live one never matches)."""
    for upload in resumable.expired(now):
        resumable.remove(upload["_id"], keep_bytes=upload["completed"])
        if not upload["completed"]:
            tally.removed["tus_expired"] += 1


def remove_abandoned_mp3s(tally: Round) -> None:
    """Half-written MP3s of jobs that ended without their converter finishing (killed, then the
    job was cancelled or dead-lettered); a converting job's is its converter's to clean."""
    for job in storage.find_jobs({"pending_mp3_id": {"$ne": None}, "status": {"$in": [str(s) for s in ENDED]}}):
        storage.delete_file(storage.mp3s(), job.pending_mp3_id)
        if storage.clear_pending_mp3(job.id, job.pending_mp3_id):
            tally.removed["abandoned_mp3"] += 1


def record(tally: Round, now: float) -> None:
    """The round's totals and what storage holds now, for the gateway's metrics."""
    stored = {kind: _sizes(bucket) for kind, bucket in (("videos", storage.videos()), ("mp3s", storage.mp3s()))}
    increments = {f"removed.{reason}": count for reason, count in tally.removed.items() if count}
    if tally.expired:
        increments["expired"] = tally.expired
    update = {"$set": {"stored": stored, "uploads_in_progress": storage.uploads().count_documents({}),
                       "last_run": now}}
    if increments:
        update["$inc"] = increments
    storage.janitor_stats().update_one({"_id": "stats"}, update, upsert=True)


def _sizes(bucket: storage.Bucket) -> dict[str, int]:
    lengths = [f.get("length", 0) for f in bucket.files.find({}, {"length": 1})]
    return {"files": len(lengths), "bytes": sum(lengths)}
