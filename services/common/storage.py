"""MongoDB access: the GridFS buckets of videos and MP3s, and the jobs collection.

Files are read in bounded windows of chunks (never the whole file at once): memory stays
flat whatever the size, HTTP Range comes for free, and it works on the MongoDB stand-in,
which answers a whole-file chunk query in one reply.
"""
from __future__ import annotations

import secrets
import time
from typing import BinaryIO, Iterator

import gridfs
import pymongo
from bson import ObjectId
from pymongo import ReturnDocument

from . import config

CHUNK_WINDOW = 16  # chunks per query: 16 x 255 KiB = ~4 MiB per reply

# pymongo >= 4.9 buffers up to 48 MB of chunks per GridFS upload stream before one insert_many
# (~140 MB peak RSS per concurrent upload once BSON-encoded); 4 MiB keeps memory flat and bounded.
try:
    import gridfs.synchronous.grid_file as _grid_file

    if getattr(_grid_file, "_UPLOAD_BUFFER_SIZE", 0) > CHUNK_WINDOW * 256 * 1024:
        _grid_file._UPLOAD_BUFFER_SIZE = CHUNK_WINDOW * 256 * 1024
except ImportError:  # older pymongo: writes chunk by chunk anyway
    pass

STATUSES = ("queued", "converting", "done", "failed")

_client: pymongo.MongoClient | None = None


def client() -> pymongo.MongoClient:
    """One client per process (it pools connections and is thread-safe)."""
    global _client
    if _client is None:
        timeout = config.env_int("MONGO_TIMEOUT_MS")
        _client = pymongo.MongoClient(
            config.env("MONGO_URI"),
            serverSelectionTimeoutMS=timeout,
            connectTimeoutMS=timeout,
            socketTimeoutMS=max(timeout, 30000),
            tz_aware=True,
        )
    return _client


def ping() -> None:
    client().admin.command("ping")


def videos() -> gridfs.GridFSBucket:
    return gridfs.GridFSBucket(client()[config.env("MONGO_VIDEOS_DB")])


def mp3s() -> gridfs.GridFSBucket:
    return gridfs.GridFSBucket(client()[config.env("MONGO_MP3S_DB")])


def _db_of(bucket: gridfs.GridFSBucket):
    return bucket._collection.database  # pymongo exposes no public accessor


def new_id() -> str:
    """An unguessable id (96 random bits, hex like an ObjectId so seed clients accept it)."""
    return secrets.token_hex(12)


def file_info(bucket: gridfs.GridFSBucket, file_id) -> dict | None:
    return _db_of(bucket).fs.files.find_one({"_id": file_id})


def read_file(bucket: gridfs.GridFSBucket, file_id, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Yield bytes [start, end] (inclusive) of a stored file, one window of chunks at a time."""
    info = file_info(bucket, file_id)
    if info is None:
        raise gridfs.errors.NoFile(f"no file {file_id!r}")
    length, chunk_size = info["length"], info["chunkSize"]
    end = length - 1 if end is None else min(end, length - 1)
    if length == 0 or start > end:
        return
    chunks = _db_of(bucket).fs.chunks
    n = start // chunk_size
    last = end // chunk_size
    while n <= last:
        window = list(chunks.find({"files_id": file_id, "n": {"$gte": n, "$lt": min(n + CHUNK_WINDOW, last + 1)}})
                      .sort("n", 1))
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


def store_file(bucket: gridfs.GridFSBucket, file_id, filename: str, source: BinaryIO, metadata: dict) -> int:
    """Store `source` under `file_id`, first removing any partial copy a crashed writer left."""
    delete_file(bucket, file_id)
    with bucket.open_upload_stream_with_id(file_id, filename, metadata=metadata) as upload:
        while block := source.read(1024 * 1024):
            upload.write(block)
    return upload.length


def delete_file(bucket: gridfs.GridFSBucket, file_id) -> None:
    """Remove a file and any stray chunks of it; no error when there is nothing to remove."""
    db = _db_of(bucket)
    # Checked first: the MongoDB stand-in answers a delete of a missing file with an error.
    if db.fs.files.find_one({"_id": file_id}, {"_id": 1}) is not None:
        db.fs.files.delete_one({"_id": file_id})
    db.fs.chunks.delete_many({"files_id": file_id})


# ---------------------------------------------------------------- jobs


def jobs():
    return client()[config.env("MONGO_JOBS_DB")].jobs


def notifications():
    return client()[config.env("MONGO_JOBS_DB")].notifications


def ensure_indexes() -> None:
    jobs().create_index([("owner", 1), ("created", -1)])
    jobs().create_index([("published", 1), ("created", 1)])
    jobs().create_index("mp3_id")


def create_job(job: dict) -> dict:
    now = time.time()
    job.update(status="queued", created=now, times={"queued": now}, published=False, attempts=0, outbox_lease=0.0,
               lease_until=0.0, mp3_id=None, reason=None)
    jobs().insert_one(job)
    return job


def get_job(job_id: str) -> dict | None:
    return jobs().find_one({"_id": job_id})


def claim_job(job_id: str, worker: str, lease_seconds: float) -> dict | None:
    """Take a queued job, or a converting one whose previous worker's lease ran out."""
    now = time.time()
    return jobs().find_one_and_update(
        {"_id": job_id, "status": {"$in": ["queued", "converting"]}, "lease_until": {"$lt": now}},
        {"$set": {"status": "converting", "worker": worker, "lease_until": now + lease_seconds,
                  "times.converting": now}, "$inc": {"attempts": 1}},
        return_document=ReturnDocument.AFTER,
    )


def renew_lease(job_id: str, worker: str, lease_seconds: float) -> bool:
    result = jobs().update_one({"_id": job_id, "worker": worker, "status": "converting"},
                               {"$set": {"lease_until": time.time() + lease_seconds}})
    return result.matched_count == 1


def set_job_fields(job_id: str, worker: str, fields: dict) -> bool:
    result = jobs().update_one({"_id": job_id, "worker": worker, "status": "converting"}, {"$set": fields})
    return result.matched_count == 1


def finish_job(job_id: str, worker: str | None, status: str, **fields) -> bool:
    """Move a job to done or failed; with `worker`, only while that worker holds it."""
    assert status in ("done", "failed")
    query: dict = {"_id": job_id, "status": {"$in": ["queued", "converting"]}}
    if worker is not None:
        query["worker"] = worker
    now = time.time()
    result = jobs().update_one(query, {"$set": dict(fields, status=status, lease_until=0.0,
                                                    **{f"times.{status}": now})})
    return result.matched_count == 1


def release_job(job_id: str, worker: str) -> None:
    """Give a job back (it will be retried) so the next attempt need not wait for the lease."""
    jobs().update_one({"_id": job_id, "worker": worker, "status": "converting"},
                      {"$set": {"status": "queued", "lease_until": 0.0}})


def unpublished_jobs(older_than: float, limit: int = 100) -> list[dict]:
    return list(jobs().find({"published": False, "created": {"$lt": older_than}}).sort("created", 1).limit(limit))


def mark_published(job_id: str) -> None:
    jobs().update_one({"_id": job_id}, {"$set": {"published": True}})


def count_unpublished() -> int:
    return jobs().count_documents({"published": False})


def is_object_id(value: str) -> bool:
    return ObjectId.is_valid(value)
