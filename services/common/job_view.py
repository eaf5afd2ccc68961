"""A job as its owner sees it: the API's view (GET /jobs, live events, webhooks), the paths it names
and its token-free download link (links.py, which needs LINK_SECRET: only the gateway and
notification show jobs)."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from . import config, links, outputs
from .jobs import Job, Status
from .options import DEFAULT_FORMAT


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
        "preset": job.preset,
        "link": None,
        "callback_url": job.callback_url,
        "webhook": job.webhook,
        "reused": job.reused,
        "source_url": job.source_url,
        "fetch": job.fetch if job.status == Status.FETCHING else None,
        "outputs": [],
        "chapters": [],
        "loudness": None,
    }
    if job.status == Status.DONE and job.mp3_id:
        shown.update(mp3_id=job.mp3_id, download_url=download_path(job.mp3_id), link=signed_link(job),
                     audio_seconds=job.audio_seconds)
        results = outputs.results_of(job)
        shown.update(outputs=[output_view(job, result) for result in results], chapters=job.chapters or [],
                     loudness={"output": results[0].get("loudness") if results else None,
                               "source": job.source_loudness})
    return shown


def output_view(job: Job, result: dict) -> dict:
    """One result file of a done job: what it is, its download (token and signed link) and its waveform's."""
    options = result.get("options") or {}
    waveform = result.get("waveform_id")
    return {
        "mp3_id": result["mp3_id"],
        "output": result.get("output", 0),
        "filename": result.get("name"),
        "format": options.get("format", DEFAULT_FORMAT),
        "media_type": result.get("media_type"),
        "size": result.get("size"),
        "audio_seconds": result.get("audio_seconds"),
        "options": options,
        "download_url": download_path(result["mp3_id"]),
        "link": signed_link(job, result["mp3_id"]),
        "loudness": result.get("loudness"),
        "waveform_url": download_path(waveform) if waveform else None,
        "waveform_link": signed_link(job, waveform) if waveform else None,
        "chapter": result.get("chapter"),
    }


def signed_link(job: Job, file_id: str | None = None) -> str | None:
    """The absolute token-free download URL of one file of a done job (its first result unless `file_id`
    names another result or a waveform), valid until retention removes it."""
    expires = job.expires_at()
    file_id = file_id or job.mp3_id
    if job.status != Status.DONE or not file_id or expires is None:
        return None
    return public_url(links.link_path(links.sign(job.id, file_id, expires)))
