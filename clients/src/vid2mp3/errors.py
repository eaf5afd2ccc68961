"""What can go wrong, each with the exit code the command line gives it (documented in README.md)."""
from __future__ import annotations

from typing import Optional

OK, JOB_FAILED, USAGE, AUTH, SERVER, REFUSED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130


class Vid2mp3Error(Exception):
    """Any error of the client; `exit_code` is what the command line exits with."""

    exit_code = SERVER


class UsageError(Vid2mp3Error):
    """A wrong argument or option (the server's 400 invalid_option included)."""

    exit_code = USAGE


class NetworkError(Vid2mp3Error):
    """The server could not be reached, or the connection broke."""

    exit_code = SERVER


class ApiError(Vid2mp3Error):
    """An HTTP error answer of the API: its status, the stable `code` and the message."""

    def __init__(self, status: int, code: str, message: str, retry_after: Optional[float] = None):
        super().__init__(f"{message} ({status} {code})")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        if self.status in (401, 403):
            return AUTH
        if self.status >= 500:
            return SERVER
        if self.status == 400 and self.code.startswith("invalid_"):
            return USAGE
        return REFUSED


class AuthError(ApiError):
    """No credential, or the server refused it (401)."""


class JobFailed(Vid2mp3Error):
    """A job ended without a result: failed, cancelled or expired."""

    exit_code = JOB_FAILED

    def __init__(self, job):
        super().__init__(f"job {job.id} {job.status}" + (f": {job.reason}" if job.reason else ""))
        self.job = job
