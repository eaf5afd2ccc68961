"""Result files shared by several jobs (dedup): a file is removed only when no other job uses it.

Every file of a job's results counts alone (each result and each waveform: a job with several outputs
may share some files with one job and others with another). A file's references are the done jobs
whose `mp3_id` or `results` name it and that have not let it go
(`mp3_released`), found by a query, so nothing can drift out of step with the jobs. A remover
and a new sharer can still cross; a short lease per file (storage/shares.py)
orders them, with single-document steps only:
- remover: takes the lease, marks its own job released, looks for another user; none: removes
  the file; else gives the lease back;
- sharer: stores its job (done, with the mp3_id) first, then `pin`s: the file exists and no
  remover holds its lease.
Either the remover's query sees the sharer's job, or the sharer sees the lease (and waits for
the outcome, or converts its own video).
"""
from __future__ import annotations

import secrets
import time

from .storage import files, job_records, shares

LEASE_SECONDS = 30.0  # far longer than a remover's few steps; a crashed remover's lease runs out
WAIT_SECONDS = 5.0  # how long a sharer or remover waits for another remover's lease


def _take_lease(result_id: str) -> str | None:
    """The lease on releasing `result_id` (its holder token), or None while another live remover holds it."""
    now, holder = time.time(), secrets.token_hex(8)
    if shares.insert_lease(result_id, holder, now + LEASE_SECONDS):
        return holder
    held = shares.find_lease(result_id) or {}
    if held.get("until", now) < now:  # its remover died: taken over unless someone was quicker
        return holder if shares.take_over_lease(result_id, held.get("holder"), holder, now + LEASE_SECONDS) else None
    return None


def _leased(result_id: str) -> bool:
    held = shares.find_lease(result_id)
    return held is not None and held.get("until", 0) >= time.time()


def other_user(result_id: str, job_id: str) -> str | None:
    """A done job other than `job_id` that still uses the result file."""
    job = job_records.other_user_of(result_id, job_id)
    return job.id if job else None


def release(result_id: str, job_id: str) -> bool:
    """Job `job_id` no longer needs the result file (deleted, expiring): remove it unless another job uses
    it. True when the file was removed. TimeoutError while another remover holds it too long."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (holder := _take_lease(result_id)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"result {result_id} is being released by another process")
        time.sleep(0.1)
    try:
        job_records.mark_result_released(job_id)
        if other_user(result_id, job_id):
            return False
        files.delete_file(files.results(), result_id)
        return True
    finally:
        shares.drop_lease(result_id, holder)


def pin(result_id: str) -> bool:
    """After storing a done job that shares `result_id`: whether the file stays (True) or is gone or
    going (False: the caller converts its own video and calls `release`)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if not _leased(result_id):  # first the lease, then the file: a remover may finish in between
            return files.file_info(files.results(), result_id) is not None
        time.sleep(0.1)
    return False


def release_all(file_ids: list[str], job_id: str) -> int:
    """`release` every file of a job (its results and waveforms); how many were removed. TimeoutError
    while another remover holds one of them too long (the files before it are released already, which
    a second call repeats harmlessly)."""
    return sum(release(file_id, job_id) for file_id in file_ids)


def pin_all(file_ids: list[str]) -> bool:
    """`pin` every file a reused job shares: True when all stay."""
    return all(pin(file_id) for file_id in file_ids)


def unshare(job_id: str, file_ids: str | list[str]) -> None:
    """A reused job one of whose shared files went before it could `pin` it: back to queued, to convert
    its own video (every file it shared is let go: it will make its own)."""
    for file_id in [file_ids] if isinstance(file_ids, str) else file_ids:
        try:
            release(file_id, job_id)  # a remover that saw this job kept the file for it: let it go again
        except TimeoutError:
            pass  # that remover still holds it and decides without this job
    job_records.requeue_unshared(job_id)  # the edge done -> queued of the transition table
