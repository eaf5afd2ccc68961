"""MongoDB access: the GridFS buckets of videos and MP3s, and the jobs collection.

Files are read in bounded windows of chunks (never the whole file at once): memory stays
flat whatever the size, HTTP Range comes for free, and it works on the MongoDB stand-in,
which answers a whole-file chunk query in one reply.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import BinaryIO, Callable, Iterator

import gridfs
import pymongo
import pymongo.errors
from bson import Binary
from pymongo import ReturnDocument

from .. import config
from .. import jobs as jobs_module
from ..jobs import Job, Status, sources_of
from .connection import client, new_id, ping

CHUNK_WINDOW = 16  # chunks per query or insert: 16 x 255 KiB = ~4 MiB in memory at most
CHUNK_SIZE = 255 * 1024  # GridFS' default
FLUSH_SECONDS = 10  # a slow writer's chunks still reach storage (and say so: on_flush) this often

class Bucket:
    """Files stored the GridFS way (`fs.files` + `fs.chunks`) in one database, read and written in
    windows of chunks: the standard GridFS layout, so any GridFS tool reads what we write."""

    def __init__(self, database):
        self.files, self.chunks = database.fs.files, database.fs.chunks

    def ensure_indexes(self) -> None:
        self.chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
        self.files.create_index([("filename", 1), ("uploadDate", 1)])


def videos() -> Bucket:
    return Bucket(client()[config.env("MONGO_VIDEOS_DB")])


def mp3s() -> Bucket:
    return Bucket(client()[config.env("MONGO_MP3S_DB")])


def file_info(bucket: Bucket, file_id) -> dict | None:
    return bucket.files.find_one({"_id": file_id})


def read_file(bucket: Bucket, file_id, start: int = 0, end: int | None = None,
              first_window: int = 1, info: dict | None = None, max_window: int = CHUNK_WINDOW) -> Iterator[bytes]:
    """Yield bytes [start, end] (inclusive) of a stored file, one window of chunks at a time (a reader
    that wants the whole file starts at CHUNK_WINDOW: one query for a short video, not four).
    `info`: the file's `file_info`, when the caller has just read it; `max_window`: chunks held at once
    (a download for a slow reader holds its window as long as the reader takes)."""
    info = info or file_info(bucket, file_id)
    if info is None:
        raise gridfs.errors.NoFile(f"no file {file_id!r}")
    length, chunk_size = info["length"], info["chunkSize"]
    end = length - 1 if end is None else min(end, length - 1)
    if length == 0 or start > end:
        return
    chunks = bucket.chunks
    n = start // chunk_size
    last = end // chunk_size
    # The window starts at one chunk and doubles: ffmpeg seeks by dropping a connection after a few KB,
    # and such a read then costs one chunk, not CHUNK_WINDOW (a short clip read whole, several times).
    size = min(max(first_window, 1), max_window)
    while n <= last:
        window = list(chunks.find({"files_id": file_id, "n": {"$gte": n, "$lt": min(n + size, last + 1)}})
                      .sort("n", 1))
        size = min(size * 2, max_window)
        if not window:
            raise gridfs.errors.CorruptGridFile(f"file {file_id!r} is missing chunk {n}")
        for chunk in window:
            if chunk["n"] != n:
                raise gridfs.errors.CorruptGridFile(f"file {file_id!r} is missing chunk {n}")
            data = bytes(chunk["data"])
            lo = start - n * chunk_size if n * chunk_size < start else 0
            hi = end - n * chunk_size + 1 if n == last else len(data)
            yield data[lo:hi]
            n += 1


class FileWriter:
    """Writes one file chunk by chunk, a window of chunks per insert; the file exists only once
    `close` writes its `fs.files` entry, and `abort` (or an exception inside `with`) removes it all.
    Its SHA-256 is computed on the way (`sha256`): what dedup compares."""

    def __init__(self, bucket: Bucket, file_id, filename: str, metadata: dict,
                 on_flush: Callable[[], None] | None = None):
        self.bucket, self.file_id, self.filename, self.metadata = bucket, file_id, filename, metadata
        self.on_flush = on_flush
        self.length = 0
        self._pending = bytearray()
        self._chunks: list[dict] = []
        self._next_n = 0
        self._flushed_at = time.monotonic()
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._pending += data
        while len(self._pending) >= CHUNK_SIZE:
            self._add_chunk(bytes(self._pending[:CHUNK_SIZE]))
            del self._pending[:CHUNK_SIZE]

    def _add_chunk(self, data: bytes) -> None:
        self._chunks.append({"files_id": self.file_id, "n": self._next_n, "data": Binary(data)})
        self._next_n += 1
        self.length += len(data)
        if len(self._chunks) >= CHUNK_WINDOW or time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        if self._chunks:
            self.bucket.chunks.insert_many(self._chunks, ordered=True)
            self._chunks = []
            if self.on_flush is not None:
                self.on_flush()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        if self._pending:
            self._add_chunk(bytes(self._pending))
            self._pending.clear()
        self._flush()
        self.bucket.files.insert_one({"_id": self.file_id, "length": self.length, "chunkSize": CHUNK_SIZE,
                                      "uploadDate": datetime.now(timezone.utc), "filename": self.filename,
                                      "metadata": self.metadata})

    def abort(self) -> None:
        self._chunks, self._pending = [], bytearray()
        delete_file(self.bucket, self.file_id)

    def __enter__(self) -> "FileWriter":
        return self

    def __exit__(self, kind, _value, _tb) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def open_writer(bucket: Bucket, file_id, filename: str, metadata: dict,
                on_flush: Callable[[], None] | None = None) -> FileWriter:
    return FileWriter(bucket, file_id, filename, metadata, on_flush)


def store_file(bucket: Bucket, file_id, filename: str, source: BinaryIO, metadata: dict) -> int:
    """Store `source` under `file_id`, first removing any partial copy a crashed writer left."""
    delete_file(bucket, file_id)
    with open_writer(bucket, file_id, filename, metadata) as writer:
        while block := source.read(1024 * 1024):
            writer.write(block)
    return writer.length


def delete_file(bucket: Bucket, file_id) -> None:
    """Remove a file and any stray chunks of it; no error when there is nothing to remove."""
    # The MongoDB stand-in answers a delete of a missing file with an error: checked first, and
    # forgiven when another remover (a second janitor) got there in between.
    if bucket.files.find_one({"_id": file_id}, {"_id": 1}) is not None:
        try:
            bucket.files.delete_one({"_id": file_id})
        except pymongo.errors.OperationFailure:
            if bucket.files.find_one({"_id": file_id}, {"_id": 1}) is not None:
                raise
    bucket.chunks.delete_many({"files_id": file_id})


# ---------------------------------------------------------------- jobs


def jobs():
    return client()[config.env("MONGO_JOBS_DB")].jobs


def notifications():
    return client()[config.env("MONGO_JOBS_DB")].notifications


def webhook_secrets():  # one document per user: {_id: owner, secret: "whsec_…"} (services/common/webhook_secrets.py)
    return client()[config.env("MONGO_JOBS_DB")].webhook_secrets


def uploads():
    """Videos being received: a record from the first byte until the job exists, so the janitor
    can tell an upload a crashed gateway abandoned from one in progress."""
    return client()[config.env("MONGO_JOBS_DB")].uploads


def deleted_jobs():
    return client()[config.env("MONGO_JOBS_DB")].deleted_jobs


def janitor_stats():
    return client()[config.env("MONGO_JOBS_DB")].janitor


def record_upload(video_id: str, owner: str, declared_bytes: int = 0) -> None:
    """`declared_bytes` (the length the client announced) counts against the owner's storage quota."""
    now = time.time()
    uploads().insert_one({"_id": video_id, "owner": owner, "started": now, "touched": now, "bytes": declared_bytes})


def set_upload_bytes(video_id: str, size: int) -> None:
    uploads().update_one({"_id": video_id}, {"$set": {"bytes": size, "touched": time.time()}})


def touch_upload(video_id: str) -> None:
    """The upload is alive: some of its bytes just reached storage."""
    uploads().update_one({"_id": video_id}, {"$set": {"touched": time.time()}})


def forget_upload(video_id: str) -> None:
    uploads().delete_one({"_id": video_id})


def ensure_indexes() -> None:
    jobs().create_index([("owner", 1), ("created", -1)])
    jobs().create_index([("published", 1), ("created", 1)])
    jobs().create_index("mp3_id")
    jobs().create_index("ended_at")
    jobs().create_index("content_key")


def create_job(job: Job, status: Status = Status.QUEUED) -> Job:
    """Store a new job: queued, or done at once (a reused MP3: dedup)."""
    job.created = time.time()
    job.status, job.times, job.rev = status, {str(status): job.created}, 1
    if status in jobs_module.ENDED:
        job.ended_at = job.created
    jobs().insert_one(job.to_doc())
    return job


def get_job(job_id: str) -> Job | None:
    doc = jobs().find_one({"_id": job_id})
    return Job.from_doc(doc) if doc else None


def find_job(query: dict) -> Job | None:
    doc = jobs().find_one(query)
    return Job.from_doc(doc) if doc else None


def find_jobs(query: dict) -> list[Job]:
    return [Job.from_doc(doc) for doc in jobs().find(query)]


def claim_video_removal(job_id: str) -> bool:
    """Take the removal of a job's video (retention); False when another janitor took it."""
    result = jobs().update_one({"_id": job_id, "video_removed": {"$in": [False, None]}},
                               {"$set": {"video_removed": True}})
    return result.matched_count == 1


def clear_pending_mp3(job_id: str, mp3_id: str) -> bool:
    """Take the removal of a half-written MP3 that no converter holds any more."""
    result = jobs().update_one({"_id": job_id, "pending_mp3_id": mp3_id, "status": {"$ne": Status.CONVERTING}},
                               {"$set": {"pending_mp3_id": None}})
    return result.matched_count == 1


def claim_job(job_id: str, worker: str, lease_seconds: float, mp3_id: str | None = None) -> Job | None:
    """Take a queued job, or a converting one whose previous worker's lease ran out. With `mp3_id`, the
    id this attempt's output will have is recorded in the same write (one write less per job), and the
    job comes back as it was before the claim: its `pending_mp3_id` is a dead attempt's, to remove."""
    now = time.time()
    fields = {"status": Status.CONVERTING, "worker": worker, "lease_until": now + lease_seconds,
              "times.converting": now, "progress": None, "eta_seconds": None}
    doc = jobs().find_one_and_update(
        {"_id": job_id, "status": {"$in": sources_of(Status.CONVERTING)}, "lease_until": {"$lt": now}},
        {"$set": dict(fields, pending_mp3_id=mp3_id) if mp3_id else fields, "$inc": {"attempts": 1, "rev": 1}},
        return_document=ReturnDocument.BEFORE if mp3_id else ReturnDocument.AFTER,
    )
    return Job.from_doc(doc) if doc else None


def _held(job_id: str, worker: str) -> dict:
    return {"_id": job_id, "worker": worker, "status": Status.CONVERTING}


def renew_lease(job_id: str, worker: str, lease_seconds: float) -> bool:
    result = jobs().update_one(_held(job_id, worker), {"$set": {"lease_until": time.time() + lease_seconds}})
    return result.matched_count == 1


def holds(job_id: str, worker: str) -> bool:
    """Whether `worker` still holds the job (not cancelled, deleted or taken over)."""
    return jobs().find_one(_held(job_id, worker), {"_id": 1}) is not None


def reserve_output(job_id: str, worker: str, nbytes: int) -> bool:
    """Record the bytes the job's result may take (its owner's usage counts them while it converts)."""
    return jobs().update_one(_held(job_id, worker), {"$set": {"output_reserved": nbytes}}).matched_count == 1


def set_progress(job_id: str, worker: str, progress: float, eta_seconds: float | None) -> None:
    jobs().update_one(_held(job_id, worker), {"$set": {"progress": progress, "eta_seconds": eta_seconds},
                                              "$inc": {"rev": 1}})


def finish_job(job_id: str, worker: str | None, status: Status, **fields) -> bool:
    """Move a job to done or failed; with `worker`, only while that worker holds it."""
    query: dict = {"_id": job_id, "status": {"$in": sources_of(status)}}
    if worker is not None:
        query["worker"] = worker
    now = time.time()
    update = dict(fields, status=status, lease_until=0.0, ended_at=now, **{f"times.{status}": now})
    return jobs().update_one(query, {"$set": update, "$inc": {"rev": 1}}).matched_count == 1


def cancel_job(query: dict) -> Job | None:
    """Cancel the active job matching `query`; its converter notices and stops. None if not active."""
    now = time.time()
    doc = jobs().find_one_and_update(
        dict(query, status={"$in": sources_of(Status.CANCELLED)}),
        {"$set": {"status": Status.CANCELLED, "lease_until": 0.0, "progress": None, "eta_seconds": None,
                  "ended_at": now, "times.cancelled": now}, "$inc": {"rev": 1}},
        return_document=ReturnDocument.AFTER)
    return Job.from_doc(doc) if doc else None


TOMBSTONE_SECONDS = 7 * 86400  # longer than any message waits in a queue


def delete_job(job_id: str) -> None:
    """Remove the job and the records of its emails (its files are the caller's to remove first),
    leaving a tombstone: a message still on its way for it is then dropped, not taken for poison."""
    deleted_jobs().update_one({"_id": job_id}, {"$set": {"deleted_at": time.time()}}, upsert=True)
    for status in jobs_module.ENDED:
        notifications().delete_many({"_id": {"$in": [f"{job_id}:{status}", f"{job_id}:{status}:webhook"]}})
    jobs().delete_one({"_id": job_id})


def record_webhook(job_id: str, attempt: dict) -> None:
    """Show the last webhook delivery attempt on the job (a change its owner sees: rev moves)."""
    jobs().update_one({"_id": job_id}, {"$set": {"webhook": attempt}, "$inc": {"rev": 1}})


def was_deleted(job_id: str) -> bool:
    return deleted_jobs().find_one({"_id": job_id}, {"_id": 1}) is not None


def forget_old_tombstones(now: float) -> int:
    return deleted_jobs().delete_many({"deleted_at": {"$lt": now - TOMBSTONE_SECONDS}}).deleted_count


def expire_job(job_id: str, status: Status) -> bool:
    """Retention removed the job's last file: it turns `expired` (from `status`, so two janitors agree)."""
    result = jobs().update_one({"_id": job_id, "status": status},
                               {"$set": {"status": Status.EXPIRED, "times.expired": time.time()},
                                "$inc": {"rev": 1}})
    return result.matched_count == 1


def release_job(job_id: str, worker: str) -> None:
    """Give a job back (it will be retried) so the next attempt need not wait for the lease."""
    jobs().update_one(_held(job_id, worker), {"$set": {"status": Status.QUEUED, "lease_until": 0.0, "progress": None},
                                              "$inc": {"rev": 1}})
