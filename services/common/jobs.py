"""The job contract: its fields, statuses and transitions, and its result's name and type.

Every service reads and writes jobs through this module: the gateway creates them, the converter
moves them, notification mails them. Its messages are in messages.py, the view users get of a job
in job_view.py; this module needs nothing but the standard library and the settings (config.py)
and options (options.py) a job holds. ARCHITECTURE.md tells the story.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum

from . import config
from .options import DEFAULT_FORMAT, FORMATS, Format


class Status(StrEnum):
    FETCHING = "fetching"  # a source_url job: a worker is fetching its video (then queued)
    QUEUED = "queued"
    CONVERTING = "converting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


ACTIVE = (Status.FETCHING, Status.QUEUED, Status.CONVERTING)
ENDED = (Status.DONE, Status.FAILED, Status.CANCELLED)  # kept until retention removes their files
FINAL = ENDED + (Status.EXPIRED,)  # nothing more happens to these
CONVERTER_OUTCOMES = (Status.DONE, Status.FAILED)  # what the converter announces (and notification mails)
# Which status may follow which (every status write in services/common/storage/job_records.py is
# guarded by this table): converting → converting is a crashed worker's job taken over, converting →
# queued a worker giving a job back for a retry, done → queued a reused job (dedup) whose shared result
# went before it could pin it, now converting its own video (sharing.unshare).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.FETCHING: frozenset({Status.FETCHING, Status.QUEUED, Status.FAILED, Status.CANCELLED}),
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
    mp3_id: str | None = None  # the result file (any format; the field keeps its stored and API name)
    audio_seconds: float | None = None
    trace: dict[str, str] = field(default_factory=dict)  # W3C context of the upload, for late publishes
    published: bool = False  # the broker confirmed its `video` message
    outbox_lease: float = 0.0
    worker: str | None = None  # the converter holding it
    lease_until: float = 0.0
    attempts: int = 0
    pending_mp3_id: str | None = None  # the converting attempt: its files derive from it (files.attempt_file_id)
    progress: float | None = None  # 0-100 while converting, None while unknown
    eta_seconds: float | None = None
    ended_at: float | None = None  # when it reached done, failed or cancelled: retention counts from here
    video_removed: bool = False  # retention removed the source video
    rev: int = 0  # bumped by every change users can see: the id of its live events
    options: dict = field(default_factory=dict)  # options.Options.to_dict(); empty: the default (MP3 at MP3_BITRATE)
    callback_url: str | None = None  # where its end is POSTed as a signed webhook (checked at upload and at delivery)
    webhook: dict | None = None  # the last webhook delivery attempt: state, attempts, at, status_code, error
    sha256: str | None = None  # of the uploaded video, computed while it was stored
    content_key: str | None = None  # sha256 + options: jobs with the same key make the same result (dedup)
    reused: bool = False  # done at once with the result of an earlier job of the same content_key
    mp3_released: bool = False  # let go of its result (deleted or expiring): no longer counts as a user of it
    quota_exempt: bool = False  # uploaded by an admin: its result is not held to a storage quota
    output_reserved: int | None = None  # while converting: bytes its result may take (counted in the quota)
    # Several outputs, presets, chapters, analysis (issue 23). `options` stays the first output's options.
    outputs: list[dict] = field(default_factory=list)  # every output's Options.to_dict(), in order; empty: [options]
    results: list[dict] = field(default_factory=list)  # once done, one per result file: see RESULT_FIELDS
    preset: str | None = None  # the preset named at upload (options hold it resolved)
    chapters: list[dict] = field(default_factory=list)  # the source's: {"title", "start", "end"} (seconds)
    source_loudness: dict | None = None  # the source's loudness when normalisation measured it (LOUDNESS_FIELDS)
    source_url: str | None = None  # where a URL import fetches the video from (instead of an upload)
    fetch: dict | None = None  # while fetching: {"bytes": read so far, "total": announced length or None}

    @property
    def id(self) -> str:
        return self._id

    def expires_at(self) -> float | None:
        """When retention removes the job's last file (the result of a done job, else the video)."""
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


# One entry of `Job.results` (a job has one per output; split=chapters makes one per chapter):
#   mp3_id        the result file (GridFS `mp3s`, any format; the name is the API's)
#   output        the index in `outputs` it was made from
#   name          its download file name; media_type its Content-Type; size its bytes
#   options       the Options.to_dict() it was made with; audio_seconds its length
#   loudness      LOUDNESS_FIELDS of the result as encoded
#   waveform_id   its peaks file (BBC audiowaveform JSON v2, GridFS `mp3s`), or None
#   chapter       split=chapters: {"index" (1-based), "count", "title", "start", "end"}, else absent
RESULT_FIELDS = ("mp3_id", "output", "name", "media_type", "size", "options", "audio_seconds", "loudness",
                 "waveform_id", "chapter")
LOUDNESS_FIELDS = ("integrated_lufs", "range_lu", "true_peak_dbtp")


# ---------------------------------------------------------------- the result's name and type


def stem(filename: str | None) -> str:
    return os.path.splitext(filename or "")[0] or "audio"


def output_format(job: Job) -> Format:
    """The format of the job's result (an unknown stored one reads as the default, MP3)."""
    return FORMATS.get(str((job.options or {}).get("format")), FORMATS[DEFAULT_FORMAT])


def result_name(job: Job) -> str:
    """The result's file name: the upload's, with the extension of the job's format."""
    return stem(job.filename) + "." + output_format(job).extension


def media_type(job: Job) -> str:
    """The result's Content-Type."""
    return output_format(job).media_type
