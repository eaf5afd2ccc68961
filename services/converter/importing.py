"""A URL import's first step, done by the converter that takes its `video` message: fetch the source
(fetch.py) into GridFS `videos` as the job's video, then move the job `fetching` → `queued` so the same
message goes on to convert it.

The fetcher holds the job under a lease (`job_records.claim_fetch`), renewed with every progress write;
a write that matches nothing means the job was cancelled, deleted or taken over: the fetch stops and
its partial file goes. An attempt starts by removing what a dead attempt left under the same id.
"""
from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit


from services.common import telemetry
from services.common.jobs import Job, Status
from services.common.messaging import TransientError
from services.common.metrics import observe
from services.common.quota_usage import QuotaBusy, leased, limits, usage
from services.common.storage import files, job_records

from . import fetch, metrics

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)
PROGRESS_INTERVAL = 1.0  # seconds between progress writes: a bounded rate of `rev` bumps and live events
FAILED_PREFIX = "could not import the video: "
RETRY_MARK = "import attempt failed: "  # a retry's reason from the source (not from our own dependencies)


class FetchStopped(Exception):
    """The job is no longer this fetcher's (cancelled, deleted, taken over)."""


class ProgressWriter:
    """`fetch`'s progress callback: writes `{"bytes", "total"}` into the job at most once a PROGRESS_INTERVAL,
    which also renews the lease and notices a cancel."""

    def __init__(self, job_id: str, worker_id: str, lease_seconds: float):
        self.job_id, self.worker_id, self.lease = job_id, worker_id, lease_seconds
        self.written_at = time.monotonic()

    def __call__(self, received: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.written_at < PROGRESS_INTERVAL:
            return
        self.written_at = now
        if not job_records.fetch_progress(self.job_id, self.worker_id, {"bytes": received, "total": total}, self.lease):
            raise FetchStopped()


def run(job: Job, worker_id: str, lease_seconds: float) -> Status | None:
    """Fetch the job's source: QUEUED once stored (the caller claims it), FAILED (the caller announces it),
    None when the job went meanwhile. TransientError for a retry later."""
    taken = job_records.claim_fetch(job.id, worker_id, lease_seconds)
    if taken is None:
        raise TransientError("the import is being fetched by another converter; retrying after its lease")
    host = urlsplit(taken.source_url or "").hostname or ""
    started = time.monotonic()
    with tracer.start_as_current_span("fetch source", attributes={"server.address": host}) as span:
        try:
            got = _fetch_into_storage(taken, worker_id, lease_seconds)
        except fetch.FetchFailed as exc:
            telemetry.record_error(span, exc)
            return _fail(taken, worker_id, str(exc), started)
        except fetch.FetchRetry as exc:
            metrics.IMPORTS.labels("retried").inc()
            raise TransientError(RETRY_MARK + str(exc)) from None
        except FetchStopped:
            metrics.IMPORTS.labels("cancelled").inc()
            log.info("import stopped: the job went", extra={"job_id": job.id})
            return None
        span.set_attribute("vid2mp3.import.bytes", got.size)
        span.set_attribute("vid2mp3.import.redirects", got.redirects)
    if not taken.quota_exempt and _over_storage_quota(taken):
        files.delete_file(files.videos(), taken.video_id)
        return _fail(taken, worker_id, "storage quota exceeded by the fetched video (USER_MAX_STORED_BYTES); "
                                       "delete jobs you no longer need", started)
    if not job_records.fetched(taken.id, worker_id, got.size, got.sha256, got.content_type):
        files.delete_file(files.videos(), taken.video_id)  # cancelled or deleted in the last moment
        metrics.IMPORTS.labels("cancelled").inc()
        return None
    metrics.IMPORTS.labels("fetched").inc()
    metrics.IMPORT_BYTES.inc(got.size)
    observe(metrics.IMPORT_DURATION, time.monotonic() - started)
    log.info("import fetched", extra={"job_id": job.id, "size": got.size, "host": host, "redirects": got.redirects})
    return Status.QUEUED


class _Stored:
    def __init__(self, fetched: fetch.Fetched, sha256: str):
        self.size, self.content_type, self.redirects, self.sha256 = (fetched.size, fetched.content_type,
                                                                    fetched.redirects, sha256)


def _fetch_into_storage(job: Job, worker_id: str, lease_seconds: float) -> _Stored:
    files.delete_file(files.videos(), job.video_id)  # what a dead attempt left
    writer = files.open_writer(files.videos(), job.video_id, job.filename,
                               {"source_host": urlsplit(job.source_url or "").hostname})
    try:
        got = fetch.fetch(job.source_url or "", writer, ProgressWriter(job.id, worker_id, lease_seconds))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return _Stored(got, writer.sha256)


def _over_storage_quota(job: Job) -> bool:
    """Whether the owner's stored bytes, the fetched video now among them, pass USER_MAX_STORED_BYTES."""
    try:
        with leased(job.owner) as account:
            return usage(job.owner, account=account).stored_bytes > limits().stored_bytes
    except QuotaBusy:
        raise TransientError("the owner's quota is being checked elsewhere; retrying") from None


def _fail(job: Job, worker_id: str, reason: str, started: float) -> Status | None:
    metrics.IMPORTS.labels("failed").inc()
    observe(metrics.IMPORT_DURATION, time.monotonic() - started)
    log.info("import failed", extra={"job_id": job.id, "reason": reason})
    if not job_records.finish_job(job.id, worker_id, Status.FAILED, reason=FAILED_PREFIX + reason, fetch=None):
        return None  # cancelled or deleted meanwhile
    return Status.FAILED


def give_up_reason(reason: str) -> str | None:
    """The failed job's reason when an import's retries ran out on the source's trouble (its last error, for
    the user); None when the last error was not the source's (a system failure)."""
    if RETRY_MARK not in reason:
        return None
    return FAILED_PREFIX + reason.split(RETRY_MARK, 1)[1]
