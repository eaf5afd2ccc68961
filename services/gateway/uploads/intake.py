"""What multipart and tus uploads share: the steps before the bytes (a place, the Idempotency-Key, the
file name, options and callback URL) and the end, where a stored video becomes a job.

Dedup, per output: the same content (SHA-256 of the video, computed while it was stored) with the
same output options from the same owner (any owner with DEDUP_ACROSS_USERS=1) makes the same result.
When every output a new job asks for was made already by done jobs of that video, the new job is done
at once, shares those results and their waveforms (services/common/sharing.py counts the users of each
file) and its own video is removed. When only some were made, the job converts them all: one decode
makes every output, so sharing a part would save little and tie the job to several others' files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Mapping

from flask import request
from opentelemetry import propagate, trace

from services.common import callbacks, config, idempotency, jobs, outputs, presets, sharing, telemetry
from services.common.errors import Conflict
from services.common.jobs import Job, Status
from services.common.options import OptionError, Options
from services.common.storage import files, job_records, uploads as upload_records
from services.common.storage.connection import new_id
from services.common.storage.errors import DuplicateRecord
from services.common.web import ApiError

from .. import broker, metrics, outbox, places

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024  # a request body is read this much at a time


# ---------------------------------------------------------------- before the bytes


def slot():
    """Hold one of this process' UPLOADS_MAX upload places while receiving a body (places.py)."""
    return places.UPLOADS.hold()


def hold_idempotency_key(user: dict) -> idempotency.Reservation | str | None:
    """This request's hold on its Idempotency-Key (none without one), or the first job's id on a repeat;
    decided before any byte of the body is read."""
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    if key is None:
        return None
    try:
        held = idempotency.reserve(user["sub"], key)
    except Conflict:
        metrics.IDEMPOTENT_REPLAYS.labels("conflict").inc()
        raise
    if isinstance(held, str):
        metrics.IDEMPOTENT_REPLAYS.labels("replayed").inc()
        log.info("idempotent upload replayed", extra={"job_id": held})
    return held


def safe_filename(raw: str | None) -> str:
    """The user's file name for display and for the MP3's name: no path, no control characters."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return name[:200] or "video"


def invalid_option(error: OptionError) -> ApiError:
    return ApiError(400, "invalid_option", f"invalid option {error.field}: {error.message}")


def checked_callback_url(value: str | None) -> str | None:
    """A webhook target from a form field or tus metadata, or 400 invalid_callback_url."""
    try:
        return callbacks.callback_url(value)
    except callbacks.CallbackRefused as exc:
        raise ApiError(400, "invalid_callback_url", str(exc)) from None


# ---------------------------------------------------------------- a stored video becomes a job


@dataclass
class StoredUpload:
    """A video in storage and what its upload asked for: what a job is made of."""

    video_id: str
    filename: str
    size: int
    content_type: str | None
    options: Options = Options()
    outputs: list[Options] = field(default_factory=list)  # every output when the upload gave `outputs`, else empty
    fields: dict[str, str] = field(default_factory=dict)  # the form fields next to the file (options, callback_url)
    sha256: str | None = None  # of the stored bytes (None where a writer could not compute it)
    preset: str | None = None  # the preset the upload named (`options` hold it resolved)
    source_url: str | None = None  # a URL import: nothing stored yet, a converter fetches it into video_id


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


def requested(fields: Mapping[str, str], owner: str) -> tuple[Options, list[Options], str | None]:
    """What an upload's form fields or metadata ask for: the first output's options, every output when
    `outputs` was given (else []), and the preset named, whose fields are the defaults of the explicit
    ones (presets.resolve); 400 unknown_preset, or invalid_option naming the bad field (`outputs[1].bitrate`)."""
    merged, preset = presets.resolve(fields, owner)
    try:
        asked = outputs.requested_outputs(merged)
    except OptionError as exc:
        raise invalid_option(exc) from None
    return asked[0], (asked if outputs.asks_for_outputs(merged) else []), preset


def reusable(owner: str, key: str) -> Job | None:
    """A done job whose MP3 a new job of `owner` with content `key` may share."""
    return job_records.reusable_job(key, None if config.env_bool("DEDUP_ACROSS_USERS") else owner)


def create_job(user: dict, stored: StoredUpload, job_id: str | None = None) -> Job:
    """Store the job of an uploaded video (reused or queued) and publish it (or leave it to the outbox).
    With a `job_id` chosen beforehand (a resumable upload), a second call (a retried last chunk)
    answers the job the first one made."""
    options = stored.options.to_dict()
    wanted = [each.to_dict() for each in stored.outputs]
    key = content_key(stored.sha256, options if len(wanted) <= 1 else {"outputs": wanted})
    job_id = job_id or new_id()
    token = telemetry.job_context(job_id)
    try:
        carrier: dict = {}
        propagate.inject(carrier)  # the outbox re-publishes into this same trace
        job = Job(job_id, owner=user["sub"], owner_email=user.get("email"), filename=stored.filename,
                  size=stored.size, content_type=stored.content_type, video_id=stored.video_id, trace=carrier,
                  options=options, outputs=wanted, sha256=stored.sha256, content_key=key,
                  callback_url=stored.fields.get("callback_url") or None, quota_exempt=bool(user.get("admin")),
                  preset=stored.preset, source_url=stored.source_url)
        try:
            job = _reuse(job) or job_records.create_job(job, Status.FETCHING if stored.source_url else Status.QUEUED)
        except DuplicateRecord:
            return job_records.get_job(job_id)
        upload_records.forget_upload(stored.video_id)
        metrics.UPLOADS.labels("accepted").inc()
        metrics.UPLOAD_BYTES.inc(stored.size)
        metrics.JOB_OUTPUTS.observe(len(wanted) or 1)
        metrics.UPLOAD_PRESETS.labels(presets.metric_label(stored.preset)).inc()
        trace.get_current_span().set_attribute("vid2mp3.job.reused", job.reused)
        _publish(job)
        log.info("upload accepted", extra={"job_id": job_id, "size": stored.size, "reused": job.reused,
                                           "options": stored.options.used(), "preset": stored.preset})
    finally:
        telemetry.detach(token)
    return job


def shareable_results(job: Job) -> list[dict] | None:
    """The results of earlier done jobs of the same video that make every output `job` asks for (named
    after this job's upload), or None when some output was never made (dedup per output)."""
    if not job.sha256:
        return None
    owner = None if config.env_bool("DEDUP_ACROSS_USERS") else job.owner
    found = outputs.shared_results(outputs.stored_outputs(job), job_records.reuse_candidates(job.sha256, owner))
    return None if found is None else [_as_own(job, result) for result in found]


def _as_own(job: Job, result: dict) -> dict:
    """A shared result as the new job shows it: named after this upload's file (a chapter's keeps the
    name its converter gave it), its size known."""
    own = dict(result)
    name = own.get("name") or jobs.result_name(job)
    if own.get("chapter") is None:
        own["name"] = jobs.stem(job.filename) + os.path.splitext(name)[1]
    if own.get("size") is None:
        info = files.file_info(files.results(), own["mp3_id"])
        own["size"] = info["length"] if info else None
    return own


def _reuse(job: Job) -> Job | None:
    """The job, done at once with the results earlier jobs made; None when some output was never made."""
    shared = shareable_results(job)
    if not shared:
        return None
    job.results, job.mp3_id, job.reused = shared, shared[0]["mp3_id"], True
    job.audio_seconds = shared[0].get("audio_seconds")
    job_records.create_job(job, Status.DONE)  # stored before the pin: a remover from now on sees this user
    held = outputs.file_ids(job)
    if not sharing.pin_all(held):
        log.info("a reusable result went meanwhile, converting", extra={"job_id": job.id, "mp3_id": job.mp3_id})
        sharing.unshare(job.id, held)
        return job_records.get_job(job.id)
    files.delete_file(files.videos(), job.video_id)  # nothing stored twice
    job_records.claim_video_removal(job.id)
    metrics.UPLOADS_REUSED.inc()
    log.info("upload reused earlier results", extra={"job_id": job.id, "mp3_id": job.mp3_id,
                                                      "results": len(job.results)})
    return job_records.get_job(job.id)


def _publish(job: Job) -> None:
    with broker.publishers.publisher() as publisher:
        try:
            outbox.publish_job(publisher, job)
        except Exception as exc:
            # The job is durable: whatever went wrong with the broker, the outbox relay publishes it later.
            log.warning("publish failed, left to the outbox", extra={"job_id": job.id, "error": str(exc)})
            publisher.close()
