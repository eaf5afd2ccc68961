"""The job contract: its fields, statuses and transitions, the two messages, its public view.

Every service reads and writes jobs through this module: the gateway creates them and shows
them, the converter moves them, notification mails them. ARCHITECTURE.md tells the story.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from urllib.parse import quote

from . import config, links
from .messaging import Delivery, PermanentError
from .options import DEFAULT_FORMAT, FORMATS, Format


class Status(StrEnum):
    QUEUED = "queued"
    CONVERTING = "converting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


ACTIVE = (Status.QUEUED, Status.CONVERTING)
ENDED = (Status.DONE, Status.FAILED, Status.CANCELLED)  # kept until retention removes their files
FINAL = ENDED + (Status.EXPIRED,)  # nothing more happens to these
CONVERTER_OUTCOMES = (Status.DONE, Status.FAILED)  # what the converter announces (and notification mails)
# Which status may follow which (every status write in services/common/storage/job_records.py is
# guarded by this table): converting → converting is a crashed worker's job taken over, converting →
# queued a worker giving a job back for a retry, done → queued a reused job (dedup) whose shared MP3
# went before it could pin it, now converting its own video (sharing.unshare).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.CONVERTING, Status.FAILED, Status.CANCELLED}),
    Status.CONVERTING: frozenset({Status.CONVERTING, Status.QUEUED, Status.DONE, Status.FAILED, Status.CANCELLED}),
    Status.DONE: frozenset({Status.QUEUED, Status.EXPIRED}),
    Status.FAILED: frozenset({Status.EXPIRED}),
    Status.CANCELLED: frozenset({Status.EXPIRED}),
    Status.EXPIRED: frozenset(),
}


def may_move(current: str, target: str) -> bool:
    return Status(target) in TRANSITIONS[Status(current)]


def sources_of(target: Status) -> list[str]:
    """The statuses a job may be in to move to `target` (the guard of a conditional update)."""
    return [str(status) for status, targets in TRANSITIONS.items() if target in targets]


@dataclass
class Job:
    """One conversion, as stored in the jobs collection (field names are the document's)."""

    _id: str
    owner: str
    video_id: str
    owner_email: str | None = None
    filename: str = ""
    size: int = 0
    content_type: str | None = None
    status: Status = Status.QUEUED
    created: float = 0.0
    times: dict[str, float] = field(default_factory=dict)  # when each status was entered
    reason: str | None = None  # why it failed, in words for the user
    mp3_id: str | None = None
    audio_seconds: float | None = None
    trace: dict[str, str] = field(default_factory=dict)  # W3C context of the upload, for late publishes
    published: bool = False  # the broker confirmed its `video` message
    outbox_lease: float = 0.0
    worker: str | None = None  # the converter holding it
    lease_until: float = 0.0
    attempts: int = 0
    pending_mp3_id: str | None = None  # an MP3 being written; removed if its writer dies
    progress: float | None = None  # 0-100 while converting, None while unknown
    eta_seconds: float | None = None
    ended_at: float | None = None  # when it reached done, failed or cancelled: retention counts from here
    video_removed: bool = False  # retention removed the source video
    rev: int = 0  # bumped by every change users can see: the id of its live events
    options: dict = field(default_factory=dict)  # options.Options.to_dict(); empty: today's MP3
    callback_url: str | None = None  # where its end is POSTed as a signed webhook (checked at upload and at delivery)
    webhook: dict | None = None  # the last webhook delivery attempt: state, attempts, at, status_code, error
    sha256: str | None = None  # of the uploaded video, computed while it was stored
    content_key: str | None = None  # sha256 + options: jobs with the same key make the same MP3 (dedup)
    reused: bool = False  # done at once with the MP3 of an earlier job of the same content_key
    mp3_released: bool = False  # let go of its MP3 (deleted or expiring): no longer counts as a user of it
    quota_exempt: bool = False  # uploaded by an admin: its result is not held to a storage quota
    output_reserved: int | None = None  # while converting: bytes its result may take (counted in the quota)

    @property
    def id(self) -> str:
        return self._id

    def expires_at(self) -> float | None:
        """When retention removes the job's last file (the MP3 of a done job, else the video)."""
        if self.status == Status.EXPIRED:
            return self.times.get(str(Status.EXPIRED))
        if self.ended_at is None:
            return None
        keep = "RESULT_RETENTION_SECONDS" if self.status == Status.DONE else "VIDEO_RETENTION_SECONDS"
        return self.ended_at + config.env_float(keep)

    @classmethod
    def from_doc(cls, doc: dict) -> "Job":
        known = {name: doc[name] for name in cls.__dataclass_fields__ if name in doc}
        known["status"] = Status(known.get("status", Status.QUEUED))
        return cls(**known)

    def to_doc(self) -> dict:
        doc = {name: getattr(self, name) for name in self.__dataclass_fields__}
        doc["status"] = str(self.status)
        return doc


# ---------------------------------------------------------------- the two messages


@dataclass(frozen=True)
class VideoMessage:
    """On the `video` queue: a stored job waiting for a converter."""

    job_id: str

    def body(self) -> dict:
        return {"job_id": self.job_id}

    @property
    def message_id(self) -> str:
        return self.job_id

    @classmethod
    def parse(cls, delivery: Delivery) -> "VideoMessage":
        return cls(_job_id_of(delivery.json()))


@dataclass(frozen=True)
class FinishedMessage:
    """On the `mp3` queue: a job that ended (done, failed or cancelled), for its email or webhook."""

    job_id: str
    status: Status

    def body(self) -> dict:
        return {"job_id": self.job_id, "status": str(self.status)}

    @property
    def message_id(self) -> str:  # the same for every announcement of one outcome: consumers dedupe by it
        return f"{self.job_id}:{self.status}"

    @classmethod
    def parse(cls, delivery: Delivery) -> "FinishedMessage":
        body = delivery.json()
        if body.get("status") not in ENDED:
            raise PermanentError("message needs a status of done, failed or cancelled")
        return cls(_job_id_of(body), Status(body["status"]))


def _job_id_of(body: dict) -> str:
    job_id = body.get("job_id")
    if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
        raise PermanentError("message has no valid job_id")
    return job_id


# ---------------------------------------------------------------- what users see


def status_path(job_id: str) -> str:
    return f"/jobs/{quote(job_id)}"


def download_path(mp3_id: str) -> str:
    return f"/download?fid={quote(mp3_id)}"


def public_url(path: str) -> str:
    """An absolute URL on the gateway, as users reach it (for emails)."""
    return config.env("PUBLIC_URL").rstrip("/") + path


def stem(filename: str | None) -> str:
    return os.path.splitext(filename or "")[0] or "audio"


def output_format(job: Job) -> Format:
    """The format of the job's result (an unknown stored one reads as the default, MP3)."""
    return FORMATS.get(str((job.options or {}).get("format")), FORMATS[DEFAULT_FORMAT])


def mp3_name(job: Job) -> str:
    """The result's file name: the upload's, with the extension of the job's format."""
    return stem(job.filename) + "." + output_format(job).extension


def media_type(job: Job) -> str:
    """The result's Content-Type."""
    return output_format(job).media_type


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
    }
    if job.status == Status.DONE and job.mp3_id:
        shown.update(mp3_id=job.mp3_id, download_url=download_path(job.mp3_id), link=signed_link(job),
                     audio_seconds=job.audio_seconds)
    return shown


def signed_link(job: Job) -> str | None:
    """The absolute token-free download URL of a done job's MP3, valid until retention removes it."""
    expires = job.expires_at()
    if job.status != Status.DONE or not job.mp3_id or expires is None:
        return None
    return public_url(links.link_path(links.sign(job.id, job.mp3_id, expires)))
