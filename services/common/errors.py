"""The refusals of the domain, free of any web framework: the domain modules (idempotency keys, quotas,
a job's lifecycle, a process's places) raise them, and some of those modules run in the janitor and
the workers too, whose images have no Flask.

Each kind carries the public error code the API answers with and, when trying again later can
succeed, after how many seconds. Which HTTP status each kind is answered with is decided in one
place, services/gateway/http_errors.py.
"""
from __future__ import annotations


class DomainError(Exception):
    """A refusal a client hears about: `code` is the API's error code, the message says why in words."""

    def __init__(self, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


class InvalidInput(DomainError):
    """What the client sent cannot be used as it is (a malformed key, a bad value)."""


class NotFound(DomainError):
    """No such thing, or not the caller's."""


class Conflict(DomainError):
    """The thing is in a state that does not allow this now (finished already, held by another request)."""


class QuotaExceeded(DomainError):
    """One of the caller's own limits is reached."""


class TooBusy(DomainError):
    """The service has no room for this right now; `retry_after` says when to come back."""
