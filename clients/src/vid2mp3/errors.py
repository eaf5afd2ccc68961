"""What can go wrong, each with the exit code the command line gives it (documented in README.md)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping, Optional

OK, JOB_FAILED, USAGE, AUTH, SERVER, REFUSED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130


class Vid2mp3Error(Exception):
    """Any error of the client; `exit_code` is what the command line exits with."""

    exit_code = SERVER


class UsageError(Vid2mp3Error):
    """A wrong argument or option (the server's 400 invalid_option included); `code` names it for --json."""

    exit_code = USAGE

    def __init__(self, message: str, code: str = "usage"):
        super().__init__(message)
        self.code = code


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
        if self.status == 400 and (self.code.startswith("invalid_") or self.code == "unknown_preset"):
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


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """A Retry-After value in seconds: delay-seconds or an HTTP-date (RFC 9110 10.2.3 allows both); None
    when absent or unreadable."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # an HTTP-date is GMT; parsedate leaves "-0000" dates without a zone
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def error_from(status: int, content: Optional[bytes], headers: Mapping[str, str], reason: str = "error") -> ApiError:
    """An error answer of the API as an exception: RFC 9457 problem details (`code`, `detail`) or the
    older `error` object beside them; AuthError for a 401. `headers` must look names up case-insensitively."""
    code, message = f"http_{status}", reason or "error"
    try:
        body = json.loads(content or b"")
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        older = body.get("error") if isinstance(body.get("error"), dict) else {}
        code = str(body.get("code") or older.get("code") or code)
        message = str(body.get("detail") or older.get("message") or body.get("title") or message)
    kind = AuthError if status == 401 else ApiError
    return kind(status, code, message, retry_after_seconds(headers.get("Retry-After")))
