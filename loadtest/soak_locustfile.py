"""The normal users of the soak (loadtest/soak.py): locustfile.py's users, whose uploads name a
well-behaved webhook receiver (SOAK_WEBHOOK_URL) and whose every accepted job (each 202) is
appended to SOAK_JOBS_FILE as one JSON line {"job_id", "accepted", "user"}: the list the soak's
verdicts check against the stored state, whatever Locust saw of the job afterwards.
"""
from __future__ import annotations

import json
import os
import threading
import time

import locustfile as base

_lock = threading.Lock()


def record_accepted(job_id: str, user: str) -> None:
    line = json.dumps({"job_id": job_id, "accepted": time.time(), "user": user})
    with _lock, open(os.environ["SOAK_JOBS_FILE"], "a") as out:
        out.write(line + "\n")


class SoakMixin:
    def upload_fields(self) -> dict[str, str]:
        return {"callback_url": os.environ["SOAK_WEBHOOK_URL"]}

    def upload(self, name: str, data: bytes) -> str | None:
        job_id = super().upload(name, data)
        if job_id:
            record_accepted(job_id, self.email)
        return job_id


class SoakConvertingUser(SoakMixin, base.ConvertingUser):
    pass


class SoakBrowsingUser(SoakMixin, base.BrowsingUser):
    pass
