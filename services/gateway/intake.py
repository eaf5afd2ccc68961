"""A stored video becomes a job here: the one place where multipart and tus uploads end, and
where dedup decides whether the job needs a converter at all.

Dedup: the same content (SHA-256 of the video, computed while it was stored) with the same
output options from the same owner (any owner with DEDUP_ACROSS_USERS=1) makes the same MP3.
When a done job with such an MP3 exists, the new job is done at once, shares that MP3
(services/common/sharing.py counts its users) and its own video is removed.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace

from services.common import config, sharing, telemetry
from services.common.jobs import Job, Status
from services.common.storage import files, job_records, uploads
from services.common.storage.connection import new_id
from services.common.storage.errors import DuplicateRecord

from . import broker, metrics, outbox

if TYPE_CHECKING:
    from .uploads import StoredUpload

log = logging.getLogger(__name__)


def content_key(sha256: str | None, options: dict) -> str | None:
    """What makes two jobs' MP3s the same: the video's bytes and the canonical output options."""
    if not sha256:
        return None
    canonical = json.dumps({"sha256": sha256, "options": options}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored_sha256(video_id: str) -> str:
    """The SHA-256 of a stored video, read back (a resumable upload's: see tus._finish)."""
    digest = hashlib.sha256()
    for block in files.read_file(files.videos(), video_id, first_window=files.CHUNK_WINDOW):
        digest.update(block)
    return digest.hexdigest()


def reusable(owner: str, key: str) -> Job | None:
    """A done job whose MP3 a new job of `owner` with content `key` may share."""
    return job_records.reusable_job(key, None if config.env_bool("DEDUP_ACROSS_USERS") else owner)


def create_job(user: dict, stored: StoredUpload, job_id: str | None = None) -> Job:
    """Store the job of an uploaded video (reused or queued) and publish it (or leave it to the outbox).
    With a `job_id` chosen beforehand (a resumable upload), a second call (a retried last chunk)
    answers the job the first one made."""
    options = stored.options.to_dict()
    job_id = job_id or new_id()
    token = telemetry.job_context(job_id)
    try:
        carrier: dict = {}
        propagate.inject(carrier)  # the outbox re-publishes into this same trace
        job = Job(job_id, owner=user["sub"], owner_email=user.get("email"), filename=stored.filename,
                  size=stored.size, content_type=stored.content_type, video_id=stored.video_id, trace=carrier,
                  options=options, sha256=stored.sha256, content_key=content_key(stored.sha256, options),
                  callback_url=stored.fields.get("callback_url") or None, quota_exempt=bool(user.get("admin")))
        try:
            job = _reuse(job) or job_records.create_job(job)
        except DuplicateRecord:
            return job_records.get_job(job_id)
        uploads.forget_upload(stored.video_id)
        metrics.UPLOADS.labels("accepted").inc()
        metrics.UPLOAD_BYTES.inc(stored.size)
        trace.get_current_span().set_attribute("vid2mp3.job.reused", job.reused)
        _publish(job)
        log.info("upload accepted", extra={"job_id": job_id, "size": stored.size, "reused": job.reused,
                                           "options": stored.options.used()})
    finally:
        telemetry.detach(token)
    return job


def _reuse(job: Job) -> Job | None:
    """The job, done at once with an earlier job's MP3; None when there is none to share."""
    source = reusable(job.owner, job.content_key) if job.content_key else None
    if source is None:
        return None
    job.mp3_id, job.audio_seconds, job.reused = source.mp3_id, source.audio_seconds, True
    job_records.create_job(job, Status.DONE)  # stored before the pin: a remover from now on sees this user
    if not sharing.pin(job.mp3_id):
        log.info("reusable MP3 went meanwhile, converting", extra={"job_id": job.id, "mp3_id": job.mp3_id})
        sharing.unshare(job.id, job.mp3_id)
        return job_records.get_job(job.id)
    files.delete_file(files.videos(), job.video_id)  # nothing stored twice
    job_records.claim_video_removal(job.id)
    metrics.UPLOADS_REUSED.inc()
    log.info("upload reused an MP3", extra={"job_id": job.id, "source_job_id": source.id, "mp3_id": job.mp3_id})
    return job_records.get_job(job.id)


def _publish(job: Job) -> None:
    with broker.publishers.publisher() as publisher:
        try:
            outbox.publish_job(publisher, job)
        except Exception as exc:
            # The job is durable: whatever went wrong with the broker, the outbox relay publishes it later.
            log.warning("publish failed, left to the outbox", extra={"job_id": job.id, "error": str(exc)})
            publisher.close()
