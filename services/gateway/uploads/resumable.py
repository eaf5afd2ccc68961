"""Resumable (tus) uploads: their state in MongoDB and their bytes in GridFS, written as they arrive.

The state (a `tus` record among the uploads in progress, services/common/storage/uploads.py) holds
the committed offset, so an upload survives a dropped connection, a gateway restart and a switch of
replica. A PATCH takes the upload's lock only at the offset the client names (a stale offset or a
second PATCH at once finds no match), and checkpoints the offset after each window of chunks it stores.

Only full chunks go to `fs.chunks`, appended and never rewritten (the MongoDB stand-in cannot delete
or replace one chunk of a file); the partial chunk a PATCH ends in (< 255 KiB) is kept in the state
as `tail` and completed by the next PATCH. Full chunks a killed gateway stored past the committed
offset hold the client's bytes at their place, so `recover` adopts them. The GridFS `fs.files`
entry is written when the last byte is in.
"""
from __future__ import annotations

import time

from services.common import config
from services.common.storage import files, uploads
from services.common.storage.errors import CorruptFile
from services.common.storage.files import CHUNK_SIZE, CHUNK_WINDOW, Bucket

LOCK_SECONDS = 60  # a PATCH's hold on its upload, renewed while bytes arrive; a killed gateway's lapses


def create(upload_id: str, owner: str, owner_email: str | None, length: int, filename: str,
           options: dict, job_id: str, callback_url: str | None = None, outputs: list[dict] | None = None,
           preset: str | None = None) -> dict:
    """A new, empty upload; its job id is chosen now so that finishing it twice makes one job."""
    return uploads.create_tus(upload_id, owner, owner_email, length, filename, options, job_id, callback_url,
                              expires=time.time() + expiry_seconds(), outputs=outputs or [], preset=preset)


def expiry_seconds() -> float:
    return config.env_float("TUS_UPLOAD_EXPIRY_SECONDS")


def find(upload_id: str, owner: str) -> dict | None:
    """The caller's upload (another user's id is as good as unknown)."""
    return uploads.find_tus(upload_id, owner)


def of_job(job_id: str, owner: str) -> dict | None:
    """The caller's upload that makes job `job_id` (a repeated Idempotency-Key's)."""
    return uploads.tus_of_job(job_id, owner)


def mark_headed(upload_id: str) -> None:
    """The client asked where to go on: its next PATCH at an offset above 0 is a resumption."""
    uploads.mark_headed(upload_id)


def lock(upload_id: str, owner: str, offset: int, token: str) -> dict | None:
    """Take the upload for one PATCH at `offset`; None when the offset is stale, it is taken or gone."""
    return uploads.lock_tus(upload_id, owner, offset, token, LOCK_SECONDS)


def checkpoint(upload_id: str, token: str, offset: int, tail: bytes, release: bool = False) -> bool:
    """Commit `offset` (the bytes below it are in full chunks and `tail`); False once the lock is lost."""
    now = time.time()
    return uploads.checkpoint_tus(upload_id, token, offset, tail, expires=now + expiry_seconds(),
                                  lock_until=0.0 if release else now + LOCK_SECONDS)


def unlock(upload_id: str, token: str) -> None:
    """Give the upload up without committing anything (the next PATCH overwrites what this one wrote)."""
    uploads.unlock_tus(upload_id, token)


def mark_completed(upload_id: str) -> bool:
    """The upload's job exists; True for the one caller that marked it."""
    return uploads.mark_completed(upload_id)


def remove(upload_id: str, keep_bytes: bool = False) -> None:
    """Forget an upload and (unless its job owns them now) its bytes."""
    if not keep_bytes:
        files.delete_file(files.videos(), upload_id)
    uploads.remove_tus(upload_id)


class LockLost(Exception):
    """Another PATCH took the upload (this one stalled past its lock): stop writing at once."""


def renew(upload_id: str, token: str) -> bool:
    return uploads.renew_tus_lock(upload_id, token, time.time() + LOCK_SECONDS)


class ResumableWriter:
    """Appends one PATCH's bytes to the upload, from the committed offset; at most a window of
    chunks (~4 MiB) and the tail are in memory, and each stored window is checkpointed."""

    def __init__(self, bucket: Bucket, upload: dict, token: str):
        self.bucket, self.upload_id, self.token = bucket, upload["_id"], token
        self.offset, self.length = upload["offset"], upload["length"]
        self._stored_n = self.offset // CHUNK_SIZE  # chunks below are in fs.chunks
        self._pending = bytearray(bytes(upload.get("tail") or b""))
        if self._stored_n * CHUNK_SIZE + len(self._pending) != self.offset:
            raise CorruptFile(f"upload {self.upload_id!r}: tail and offset disagree")
        self._chunks: list[bytes] = []  # full chunks from number _stored_n on, not stored yet
        self._stored_at = time.monotonic()

    def write(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= CHUNK_SIZE:
            self._chunks.append(bytes(self._pending[:CHUNK_SIZE]))
            del self._pending[:CHUNK_SIZE]
        if len(self._chunks) >= CHUNK_WINDOW or time.monotonic() - self._stored_at >= files.FLUSH_SECONDS:
            # A slow client's bytes still reach storage, and its lock stays renewed, this often.
            self._store(final=False)

    def _store(self, final: bool) -> None:
        """Store the full chunks so far (and the file's last, partial one) and commit the new offset."""
        self._stored_at = time.monotonic()
        if not renew(self.upload_id, self.token):
            raise LockLost(self.upload_id)
        if self._pending and (self._stored_n + len(self._chunks)) * CHUNK_SIZE + len(self._pending) == self.length:
            # The file's last chunk is the one chunk that may be short.
            self._chunks.append(bytes(self._pending))
            self._pending.clear()
        files.insert_chunks(self.bucket, self.upload_id, self._stored_n, self._chunks)
        self._stored_n += len(self._chunks)
        offset = min(self._stored_n * CHUNK_SIZE, self.length) + len(self._pending)
        self._chunks = []
        if not checkpoint(self.upload_id, self.token, offset, bytes(self._pending), release=final):
            raise LockLost(self.upload_id)
        self.offset = offset

    def commit(self) -> None:
        """Store what is left, commit the offset and unlock."""
        self._store(final=True)


def recover(bucket: Bucket, upload: dict) -> dict:
    """Adopt the chunks a killed PATCH stored past the committed offset (they hold the client's bytes
    at their place); the upload as it is now. Left alone while a PATCH holds it."""
    if upload["completed"] or upload["lock_until"] > time.time():
        return upload
    stored_n = upload["offset"] // CHUNK_SIZE
    last = None
    for n, data in files.chunks_from(bucket, upload["_id"], stored_n):
        short = len(data) < CHUNK_SIZE and stored_n * CHUNK_SIZE + len(data) != upload["length"]
        if n != stored_n or short:
            raise CorruptFile(f"upload {upload['_id']!r} has a stray chunk {n}")
        last, stored_n = data, stored_n + 1
    if last is None:
        return upload
    offset = (stored_n - 1) * CHUNK_SIZE + len(last)
    return uploads.adopt_offset(upload["_id"], upload["offset"], offset) or upload


def finish_file(bucket: Bucket, upload: dict, metadata: dict) -> None:
    """Make the complete upload a GridFS file. Inserted even when an entry exists: the stand-in makes
    one (of length 0) at the first chunk and takes the insert as its update; MongoDB refuses a second
    finisher's (errors.DuplicateRecord, the caller's to forgive)."""
    files.add_file_entry(bucket, upload["_id"], upload["length"], upload["filename"], metadata)
