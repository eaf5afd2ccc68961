"""The error every layer may raise for an API client, free of Flask: the domain modules (idempotency,
quotas, …) run in the janitor and the workers too, whose images have no web framework."""
from __future__ import annotations


class ApiError(Exception):
    """An error answered as JSON: {"error": {"code": ..., "message": ...}}."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
