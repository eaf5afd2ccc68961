"""A job as its owner sees it: the API's view (GET /jobs, live events, webhooks), the paths it names
and its token-free download link (links.py, which needs LINK_SECRET: only the gateway and
notification show jobs)."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from . import config, links
from .jobs import Job, Status


def status_path(job_id: str) -> str:
    return f"/jobs/{quote(job_id)}"


def download_path(result_id: str) -> str:
    return f"/download?fid={quote(result_id)}"


def public_url(path: str) -> str:
    """An absolute URL on the gateway, as users reach it (for emails)."""
    return config.env("PUBLIC_URL").rstrip("/") + path


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z") if ts else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def view(job: Job) -> dict:
    """The job as the API shows it to its owner."""
    shown = {
        "job_id": job.id,
        "status": str(job.status),
        "filename": job.filename,
        "size": job.size,
        "created_at": _iso(job.created),
        "updated_at": _iso(max(job.times.values(), default=job.created)),
        "status_url": status_path(job.id),
        "reason": job.reason,
        "progress": _rounded(job.progress) if job.status == Status.CONVERTING else None,
        "eta_seconds": _rounded(job.eta_seconds) if job.status == Status.CONVERTING else None,
        "expires_at": _iso(job.expires_at()),
        "mp3_id": None,
        "download_url": None,
        "options": job.options or {},
        "link": None,
        "callback_url": job.callback_url,
        "webhook": job.webhook,
        "reused": job.reused,
        "source_url": job.source_url,
        "fetch": job.fetch if job.status == Status.FETCHING else None,
    }
    if job.status == Status.DONE and job.mp3_id:
        shown.update(mp3_id=job.mp3_id, download_url=download_path(job.mp3_id), link=signed_link(job),
                     audio_seconds=job.audio_seconds)
    return shown


def signed_link(job: Job) -> str | None:
    """The absolute token-free download URL of a done job's result, valid until retention removes it."""
    expires = job.expires_at()
    if job.status != Status.DONE or not job.mp3_id or expires is None:
        return None
    return public_url(links.link_path(links.sign(job.id, job.mp3_id, expires)))
