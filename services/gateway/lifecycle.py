"""What a user does to a job after uploading it: follow it live, cancel it, delete it."""
from __future__ import annotations

import json
import threading
import time
from typing import Iterator

from services.common import config, jobs, sharing, storage
from services.common.jobs import Job, Status
from services.common.web import ApiError

from . import broker, metrics

POLL_SECONDS = 0.5  # how often a live stream looks at its job
HEARTBEAT_SECONDS = 15  # a comment line this often keeps proxies from closing a quiet stream
_streams = threading.BoundedSemaphore(1)  # replaced by configure()


def configure() -> None:
    global _streams
    _streams = threading.BoundedSemaphore(config.env_int("EVENT_STREAMS_MAX"))


def cancel(query: dict) -> Job:
    """Cancel the job: a queued one never converts, a converting one's ffmpeg stops within a second."""
    cancelled = storage.cancel_job(query)
    if cancelled is not None:
        metrics.JOB_CANCELS.inc()
        broker.announce_cancel(cancelled.id)
        return cancelled
    job = storage.find_job(query)
    if job is None:
        raise ApiError(404, "not_found", "no such job or file")
    if job.status != Status.CANCELLED:
        raise ApiError(409, "job_finished", f"the job is {job.status} already and cannot be cancelled")
    return job  # cancelling twice is harmless


def delete(job: Job) -> None:
    """Cancel the job if it runs, then remove its files, its email records and the job itself."""
    job = storage.cancel_job({"_id": job.id}) or job  # the latest pending_mp3_id, if it was converting
    for bucket, file_id in ((storage.videos(), job.video_id), (storage.mp3s(), job.pending_mp3_id)):
        if file_id:
            storage.delete_file(bucket, file_id)
    if job.mp3_id:
        sharing.release(job.mp3_id, job.id)  # removed unless another job shares it (dedup)
    storage.delete_job(job.id)
    metrics.JOB_DELETES.inc()


def open_stream() -> None:
    """Take one of this process' live-stream places, or answer 503 too_busy."""
    if not _streams.acquire(blocking=False):
        metrics.TOO_BUSY.labels("event_streams").inc()
        raise ApiError(503, "too_busy", "too many live event streams on this server; poll the job or retry",
                       {"Retry-After": "5"})


def events(query: dict, last_event_id: str | None) -> Iterator[str]:
    """Server-Sent Events of the job's view: now, then at every change, until a final status.
    The event id is the job's revision, so `Last-Event-ID` resumes without repeating a view."""
    metrics.EVENT_STREAMS.inc()
    try:
        yield from _follow(query, int(last_event_id) if (last_event_id or "").isdigit() else None)
    finally:
        metrics.EVENT_STREAMS.dec()
        _streams.release()


def _follow(query: dict, sent_rev: int | None) -> Iterator[str]:
    quiet_since = time.monotonic()
    while True:
        job = storage.find_job(query)
        if job is None:
            yield "event: deleted\ndata: {}\n\n"
            return
        if job.rev != sent_rev:
            yield f"id: {job.rev}\ndata: {json.dumps(jobs.view(job))}\n\n"
            sent_rev, quiet_since = job.rev, time.monotonic()
        if job.status in jobs.FINAL:
            return
        if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        time.sleep(POLL_SECONDS)
