"""The one place the domain's refusals (services/common/errors.py) become HTTP answers: the status of
each kind, the API's JSON error body ({"error": {"code", "message"}}), and Retry-After when the error
says when to retry. Errors of HTTP itself (a wrong Content-Type, a bad header) are web.ApiError."""
from __future__ import annotations

from flask import Flask, Response

from services.common.errors import Conflict, DomainError, InvalidInput, NotFound, QuotaExceeded, TooBusy
from services.common.web import error_response

STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400, NotFound: 404, Conflict: 409, QuotaExceeded: 429, TooBusy: 503,
}


def status_of(error: DomainError) -> int:
    return next((status for kind, status in STATUS.items() if isinstance(error, kind)), 500)  # 500: a kind left out


def answer(error: DomainError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return error_response(status_of(error), error.code, error.message, headers)


def register(app: Flask) -> None:
    app.register_error_handler(DomainError, answer)
