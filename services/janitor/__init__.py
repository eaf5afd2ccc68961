"""The janitor: removes what retention says is due, and what crashes left behind.

One round (`run_once`):
- the source video of every job that ended VIDEO_RETENTION_SECONDS ago; a failed or cancelled
  job has no other file, so it turns `expired` then;
- the results (every output's, and their waveforms) of every job done RESULT_RETENTION_SECONDS ago,
  which turns `expired` (a file other jobs share, dedup, stays until the last of them expires:
  services/common/sharing.py);
- Idempotency-Keys older than IDEMPOTENCY_KEY_SECONDS;
- uploads a crashed gateway abandoned (an upload record with no job and no new bytes for
  JANITOR_GRACE_SECONDS), and results a crashed converter left half-written for a job that
  no converter holds any more;
- unfinished resumable (tus) uploads past their expiry (TUS_UPLOAD_EXPIRY_SECONDS after their last
  PATCH), bytes and record; finished ones' records once the same time has passed (their job owns the bytes);
- temp folders of converters that died (where the janitor shares their disk).

Every removal is recorded with a conditional update after the file is gone: two janitors at once
count nothing twice, a round killed half-way leaves nothing behind, and nothing a live job needs
matches the queries. The round's totals go to the janitor's statistics
(services/common/storage/janitor_stats.py), which the gateway exposes as metrics (a CronJob's
process is gone before any scrape).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from services.common import config, idempotency, outputs, sharing, workdirs
from services.common.jobs import Status
from services.common.storage import files, janitor_stats, job_records, tombstones, uploads

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
    remove_abandoned_results(tally)
    remove_expired_tus_uploads(now, tally)
    tombstones.forget_old_tombstones(now)
    idempotency.forget_expired(now)
    if config.env("WORK_DIR"):  # only where it shares the converters' disk and pids (the local stack)
        tally.removed["stale_work_dir"] += workdirs.clean_stale()
    record(tally, now)
    log.info("janitor round", extra={"removed": dict(tally.removed), "expired": tally.expired})
    return tally


def remove_old_videos(now: float, tally: Round) -> None:
    cutoff = now - config.env_float("VIDEO_RETENTION_SECONDS")
    for job in job_records.videos_due(cutoff):
        # Removed first, claimed after: a round killed in between leaves nothing behind (the next
        # round removes nothing again and claims it); of two janitors only the claimer counts it.
        files.delete_file(files.videos(), job.video_id)
        if not job_records.claim_video_removal(job.id):
            continue
        tally.removed["video_retention"] += 1
        if job.status in (Status.FAILED, Status.CANCELLED) and job_records.expire_job(job.id, job.status):
            tally.expired += 1


def remove_old_results(now: float, tally: Round) -> None:
    cutoff = now - config.env_float("RESULT_RETENTION_SECONDS")
    for job in job_records.done_before(cutoff):
        try:  # first, as for videos; each file kept while another job shares it (dedup)
            removed = sharing.release_all(outputs.file_ids(job), job.id)
        except TimeoutError:
            continue  # another remover holds one: the next round (releasing again is harmless)
        if not job_records.expire_job(job.id, Status.DONE):
            continue
        tally.expired += 1
        tally.removed["result_retention"] += removed


def remove_abandoned_uploads(now: float, tally: Round) -> None:
    """An upload is alive while its bytes keep reaching storage (FileWriter touches its record at
    least every FLUSH_SECONDS while a chunk a while arrives); one silent for the grace period is not."""
    grace = config.env_float("JANITOR_GRACE_SECONDS")
    for video_id in uploads.silent_since(now - grace):
        if job_records.job_of_video(video_id) is None:
            files.delete_file(files.videos(), video_id)
            tally.removed["abandoned_upload"] += 1
        uploads.forget_upload(video_id)


def remove_expired_tus_uploads(now: float, tally: Round) -> None:
    """A tus upload whose client stopped for TUS_UPLOAD_EXPIRY_SECONDS will not come back (a PATCH
    holding it keeps pushing `expires` forward, so a live one never matches). Records of older
    versions are adopted first, so they expire like the others."""
    uploads.adopt_legacy_tus()
    for upload in uploads.expired_tus(now):
        if not upload["completed"]:  # a finished upload's bytes are its job's video now
            files.delete_file(files.videos(), upload["_id"])
            tally.removed["tus_expired"] += 1
        uploads.remove_tus(upload["_id"])


def remove_abandoned_results(tally: Round) -> None:
    """Half-written results of jobs that ended without their converter finishing (killed, then the
    job was cancelled or dead-lettered); a converting job's is its converter's to clean. Every file the
    attempt wrote goes (several outputs: their ids derive from the pending one, files.attempt_file_id)."""
    for job in job_records.ended_with_pending_result():
        removed = files.delete_attempt(files.results(), job.pending_mp3_id)  # every result and peaks file of it
        if job_records.clear_pending_result(job.id, job.pending_mp3_id):
            tally.removed["abandoned_mp3"] += max(removed, 1)  # the reason label dashboards show


def record(tally: Round, now: float) -> None:
    """The round's totals and what storage holds now, for the gateway's metrics."""
    # "mp3s" is the `kind` label of vid2mp3_storage_bytes, as dashboards and alerts know it
    stored = {"videos": files.stored_sizes(files.videos()), "mp3s": files.stored_sizes(files.results())}
    janitor_stats.record_round(stored, uploads.count_receiving(), now, dict(tally.removed), tally.expired)
