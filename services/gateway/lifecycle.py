"""What a user does to a job after uploading it: cancel it, delete it (following it live: live_events.py)."""
from __future__ import annotations

from services.common import outputs, sharing
from services.common.errors import Conflict, NotFound
from services.common.jobs import Job, Status
from services.common.storage import files, job_records
from services.common.storage.job_records import JobMatch

from . import broker, metrics


def cancel(query: JobMatch) -> Job:
    """Cancel the job: a queued one never converts, a converting one's ffmpeg stops within a second."""
    cancelled = job_records.cancel_job(query)
    if cancelled is not None:
        metrics.JOB_CANCELS.inc()
        broker.announce_cancel(cancelled.id)
        return cancelled
    job = job_records.find_job(query)
    if job is None:
        raise NotFound("not_found", "no such job or file")
    if job.status != Status.CANCELLED:
        raise Conflict("job_finished", f"the job is {job.status} already and cannot be cancelled")
    return job  # cancelling twice is harmless


def delete(job: Job) -> None:
    """Cancel the job if it runs, then remove its files, its email records and the job itself."""
    job = job_records.cancel_job({"_id": job.id}) or job  # the latest pending_mp3_id, if it was converting
    if job.video_id:
        files.delete_file(files.videos(), job.video_id)
    if job.pending_mp3_id:  # a converting attempt's files, whole or partial
        files.delete_attempt(files.results(), job.pending_mp3_id)
    # every result and waveform, each removed unless another job shares it (dedup)
    sharing.release_all(outputs.file_ids(job), job.id)
    job_records.delete_job(job.id)
    metrics.JOB_DELETES.inc()
