"""Files in GridFS: the buckets of videos and results, read and written in windows of chunks.

Files are read in bounded windows of chunks (never the whole file at once): memory stays
flat whatever the size, HTTP Range comes for free, and it works on the MongoDB stand-in,
which answers a whole-file chunk query in one reply.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

import gridfs
import pymongo.errors
from bson import Binary

from .. import config
from .connection import database

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
    return Bucket(database(config.env("MONGO_VIDEOS_DB")))


def results() -> Bucket:
    """The produced audio files, any format (the setting keeps its first name, MONGO_MP3S_DB)."""
    return Bucket(database(config.env("MONGO_MP3S_DB")))


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
        self._attached: list[tuple] = []  # small files stored with this one's close (attach)

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

    def attach(self, file_id, filename: str, metadata: dict, data: bytes) -> None:
        """A small file (a result's waveform) stored by this one's `close`: its chunks in the insert of this
        file's last ones, its entry beside this file's, two round trips fewer than a writer of its own;
        removed with this file by `abort`."""
        self._attached.append((file_id, filename, metadata, data))

    def close(self) -> None:
        if self._pending:
            self._add_chunk(bytes(self._pending))
            self._pending.clear()
        self._chunks += [{"files_id": file_id, "n": n, "data": Binary(data[at:at + CHUNK_SIZE])}
                         for file_id, _, _, data in self._attached
                         for n, at in enumerate(range(0, len(data), CHUNK_SIZE))]
        self._flush()
        entries = [(self.file_id, self.length, self.filename, self.metadata)]
        entries += [(file_id, len(data), filename, metadata) for file_id, filename, metadata, data in self._attached]
        add_file_entries(self.bucket, entries)

    def abort(self) -> None:
        self._chunks, self._pending = [], bytearray()
        for file_id in [self.file_id, *(attached[0] for attached in self._attached)]:
            delete_file(self.bucket, file_id)

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


def add_file_entry(bucket: Bucket, file_id, length: int, filename: str, metadata: dict) -> None:
    """The `fs.files` entry that makes stored chunks a file. MongoDB refuses a second one for the same id
    (errors.DuplicateRecord); the stand-in, which made one of length 0 at the first chunk, takes it as its update."""
    add_file_entries(bucket, [(file_id, length, filename, metadata)])


def add_file_entries(bucket: Bucket, entries: list[tuple]) -> None:
    """The entries of files, each (file_id, length, filename, metadata), in one insert (one file's alone:
    its duplicate raises errors.DuplicateRecord, not a bulk write's error)."""
    now = datetime.now(timezone.utc)
    docs = [{"_id": file_id, "length": length, "chunkSize": CHUNK_SIZE, "uploadDate": now, "filename": filename,
             "metadata": metadata} for file_id, length, filename, metadata in entries]
    if len(docs) == 1:
        bucket.files.insert_one(docs[0])
    else:
        bucket.files.insert_many(docs, ordered=True)


def insert_chunks(bucket: Bucket, file_id, first_n: int, blocks: list[bytes]) -> None:
    """Append chunks `first_n`, `first_n + 1`, ... of a file being written piece by piece (tus)."""
    if blocks:
        bucket.chunks.insert_many([{"files_id": file_id, "n": first_n + i, "data": Binary(block)}
                                   for i, block in enumerate(blocks)], ordered=True)


def chunks_from(bucket: Bucket, file_id, first_n: int) -> Iterator[tuple[int, bytes]]:
    """The stored chunks of a file from number `first_n` on, as (n, data), in the order stored."""
    for chunk in bucket.chunks.find({"files_id": file_id, "n": {"$gte": first_n}}):
        yield chunk["n"], bytes(chunk["data"])


def total_length(bucket: Bucket, file_ids: list) -> int:
    """The bytes the files among `file_ids` hold (missing ones count 0)."""
    return sum(doc.get("length", 0) for doc in bucket.files.find({"_id": {"$in": file_ids}})) if file_ids else 0


def stored_sizes(bucket: Bucket) -> dict[str, int]:
    """How many files the bucket holds and their bytes."""
    lengths = [f.get("length", 0) for f in bucket.files.find({}, {"length": 1})]
    return {"files": len(lengths), "bytes": sum(lengths)}


# ---------------------------------------------------------------- the files of one conversion attempt

ATTEMPT_KINDS = ("result", "waveform")


def attempt_file_id(attempt_id: str, kind: str, n: int) -> str:
    """The id of an attempt's n-th result (kind "result") or its peaks file ("waveform"), derived from
    the one id the job records while it converts (`pending_mp3_id`): the first result's id is that id
    itself, the others as unguessable as it (a hash of it)."""
    if kind == "result" and n == 0:
        return attempt_id
    return hashlib.sha256(f"{attempt_id}:{kind}:{n}".encode()).hexdigest()[:24]


def delete_attempt(bucket: Bucket, attempt_id: str) -> int:
    """Remove every file an attempt wrote, whole or partial: results and peaks files are stored in order
    (result n, its peaks file, result n + 1), so the sweep ends at the first n that left neither.
    Returns how many files it removed."""
    removed, n = 0, 0
    while True:
        found = [file_id for file_id in (attempt_file_id(attempt_id, kind, n) for kind in ATTEMPT_KINDS)
                 if bucket.files.find_one({"_id": file_id}, {"_id": 1}) is not None
                 or bucket.chunks.find_one({"files_id": file_id}, {"_id": 1}) is not None]
        if not found:
            return removed
        for file_id in found:
            delete_file(bucket, file_id)
        removed, n = removed + len(found), n + 1
