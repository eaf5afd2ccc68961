"""Test-only helpers: waiting for mail, a job stored without the gateway. (What the load runs need too, the
API client, media and metrics, is in the devkit package.)"""
from __future__ import annotations

import email
import email.policy
import time
from pathlib import Path


def wait_mail(maildir: Path, job_id: str, timeout: float = 30) -> list[email.message.EmailMessage]:
    """The emails in the Maildir about `job_id`, waiting for at least one."""
    deadline = time.monotonic() + timeout
    while True:
        found = mails_for(maildir, job_id)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def mails_for(maildir: Path, job_id: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(maildir.glob("*")) if maildir.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["X-Vid2mp3-Job"] == job_id:
            found.append(message)
    return found


def store_file(bucket, file_id, filename: str, source, metadata: dict) -> int:
    """Store the bytes of `source` (a binary file object) under `file_id`, first removing any partial copy."""
    from services.common.storage import files

    files.delete_file(bucket, file_id)
    with files.open_writer(bucket, file_id, filename, metadata) as writer:
        while block := source.read(1024 * 1024):
            writer.write(block)
    return writer.length


def stored_job(**fields):
    """A job stored as the gateway stores one (no video behind it), for tests of the workers."""
    from services.common.jobs import Job
    from services.common.storage import job_records
    from services.common.storage.connection import new_id

    values = dict(owner="u1", owner_email="owner@example.com", filename="clip.mp4", size=1, content_type=None,
                  video_id="v")
    values.update(fields)
    return job_records.create_job(Job(new_id(), **values))


def find_jobs(match: dict) -> list:
    """Every stored job whose fields equal `match` (the product asks for one job at a time, tests for all)."""
    from services.common.jobs import Job
    from services.common.storage import job_records

    return [Job.from_doc(doc) for doc in job_records.collection().find(match)]
