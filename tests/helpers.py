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


def stored_job(**fields):
    """A job stored as the gateway stores one (no video behind it), for tests of the workers."""
    from services.common import storage
    from services.common.jobs import Job

    values = dict(owner="u1", owner_email="owner@example.com", filename="clip.mp4", size=1, content_type=None,
                  video_id="v")
    values.update(fields)
    return storage.create_job(Job(storage.new_id(), **values))
