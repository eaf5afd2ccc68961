"""The API's error body, in one place: RFC 9457 problem details (application/problem+json) that keep
the older {"error": {"code", "message"}} object beside them, for every layer that answers an error
(Flask's handlers in web.py, the gateway's domain errors, the gunicorn worker's own 408/413/429/400).

Free of any web framework: the gunicorn worker writes these bodies before Flask sees a request.

Each `code` has its problem type, the relative URI /problems/<code>: the gateway serves a page there
that explains it (web.problems_blueprint), and the list of all codes at /problems/.
"""
from __future__ import annotations

import json
from http import HTTPStatus

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "/problems/"
# Every 429 and 503 says when to come back; an answer that names no better time gets this one.
DEFAULT_RETRY_AFTER = 5

# code -> (title, what it means and what to do). The title is the same for every occurrence of the
# type (RFC 9457 3.1.3); the detail of one answer says what happened this time.
CODES: dict[str, tuple[str, str]] = {
    # HTTP itself (web._HTTP_CODES, the worker's own answers)
    "bad_request": ("Bad request", "The request is not valid HTTP or not what the route accepts."),
    "unauthorized": ("Unauthorized", "Credentials are needed."),
    "forbidden": ("Forbidden", "Not allowed."),
    "not_found": ("Not found", "No such route, job, file or upload, or not yours (another user's things are "
                               "never revealed)."),
    "method_not_allowed": ("Method not allowed", "The route exists but not with this method; see Allow."),
    "request_timeout": ("Request timeout", "The request (its head or its body) did not arrive in time; send it "
                                           "again, faster."),
    "length_required": ("Length required", "Send a Content-Length."),
    "payload_too_large": ("Content too large", "The body is larger than this route accepts (only uploads may be "
                                               "large)."),
    "uri_too_long": ("URI too long", "The request line is longer than the server reads."),
    "request_header_fields_too_large": ("Request header fields too large", "Too many or too large header fields."),
    "expectation_failed": ("Expectation failed", "Only Expect: 100-continue is supported."),
    "unsupported_media_type": ("Unsupported media type", "The body's Content-Type is not the one this route "
                                                          "accepts."),
    "range_not_satisfiable": ("Range not satisfiable", "The Range lies outside the file; see Content-Range."),
    "too_many_requests": ("Too many requests", "A limit is reached; wait Retry-After seconds."),
    "too_many_connections": ("Too many connections", "Your address holds as many connections as allowed; close "
                                                     "some or wait Retry-After seconds."),
    "internal_error": ("Internal error", "A fault of the server; the detail names the trace an operator can "
                                         "look up."),
    "not_implemented": ("Not implemented", "The server does not support this (a Transfer-Encoding, a feature)."),
    "unavailable": ("Service unavailable", "Retry after Retry-After seconds."),
    "http_error": ("HTTP error", "An HTTP error without a more specific code."),
    # bodies and parameters
    "invalid_json": ("Invalid JSON", "The body is not a JSON object."),
    "invalid_parameter": ("Invalid parameter", "A query parameter is out of its range."),
    "invalid_cursor": ("Invalid cursor", "The cursor is malformed, not one this server made, or was made with "
                                         "other filters: repeat the filters it came with, or start again."),
    "invalid_header": ("Invalid header", "A header's value is not what it must be."),
    "missing_fid": ("Missing fid", "Give the result's id as ?fid=MP3_ID."),
    "invalid_option": ("Invalid output option", "An output option (format, bitrate, ...) is not allowed; the "
                                                "detail names the field and its allowed values."),
    "invalid_callback_url": ("Invalid callback URL", "callback_url must be a public http(s) URL."),
    "invalid_source_url": ("Invalid source URL", "source_url must be a public http(s) URL without credentials "
                                                 "(a URL import, POST /jobs)."),
    "invalid_idempotency_key": ("Invalid Idempotency-Key", "1 to 128 characters of A-Z a-z 0-9 . _ : ~ + / = -."),
    "idempotency_conflict": ("Idempotency conflict", "The first request with this Idempotency-Key is still "
                                                     "being received."),
    # uploads (multipart and tus)
    "missing_file": ("Missing file", 'Send the video as the form field file (-F "file=@video.mp4").'),
    "empty_file": ("Empty file", "The upload has no bytes."),
    "too_many_files": ("Too many files", "Send exactly one file per upload."),
    "malformed_multipart": ("Malformed multipart body", "The multipart/form-data body cannot be read."),
    "incomplete_body": ("Incomplete body", "The connection ended in the middle of the body."),
    "unexpected_body": ("Unexpected body", "tus creation takes no body: create the upload, then PATCH it."),
    "unsupported_tus_version": ("Unsupported tus version", "Send Tus-Resumable: 1.0.0."),
    "invalid_metadata": ("Invalid Upload-Metadata", "Upload-Metadata must be distinct `key base64value` pairs."),
    "offset_mismatch": ("Offset mismatch", "The upload is at another offset; HEAD it and resume there."),
    "upload_locked": ("Upload locked", "Another request is writing this upload; retry after Retry-After "
                                       "seconds."),
    "expired": ("Expired", "Removed after its retention period (or an upload that expired unfinished)."),
    "invalid_link": ("Invalid link", "The signed download link was changed or cut short."),
    "link_revoked": ("Link revoked", "The link's job was deleted or its result removed."),
    # presets
    "unknown_preset": ("Unknown preset", "The upload names a preset that is neither built in nor one of yours; see "
                                         "GET /me/presets."),
    "invalid_preset_name": ("Invalid preset name", "A preset name is 1 to 40 characters of a-z, 0-9, _ and -."),
    "builtin_preset": ("Built-in preset", "Built-in presets cannot be replaced or deleted; give yours another "
                                          "name."),
    "too_many_presets": ("Too many presets", "You keep as many presets as allowed (PRESETS_MAX_PER_USER); delete "
                                             "one first."),
    # jobs, quotas, capacity
    "job_finished": ("Job finished", "The job ended already and cannot be cancelled."),
    "quota_exceeded": ("Quota exceeded", "One of your limits (unfinished jobs, stored bytes, uploads a day) is "
                                         "reached; the detail names it. See RateLimit and Retry-After."),
    "too_many_streams": ("Too many event streams", "You follow as many jobs live on this server as allowed; "
                                                   "close one or poll the job."),
    "too_busy": ("Too busy", "No room for this right now; retry after Retry-After seconds."),
    "storage_unavailable": ("Storage unavailable", "File storage cannot be reached; retry after Retry-After "
                                                   "seconds."),
    "auth_unavailable": ("Auth unavailable", "The auth service cannot be reached; retry after Retry-After "
                                             "seconds."),
    "database_unavailable": ("Database unavailable", "The user database cannot be reached; retry after "
                                                     "Retry-After seconds."),
    # accounts and tokens
    "invalid_email": ("Invalid email", "The email is not a valid address."),
    "invalid_password": ("Invalid password", "The password is not a string of at most 256 characters."),
    "weak_password": ("Weak password", "The password is too short or too guessable."),
    "email_taken": ("Email taken", "An account with this email exists."),
    "missing_credentials": ("Missing credentials", "Send the email and password with HTTP Basic (curl -u)."),
    "invalid_credentials": ("Invalid credentials", "Wrong email or password, or malformed Basic credentials."),
    "too_many_attempts": ("Too many login attempts", "Too many failed logins; wait Retry-After seconds."),
    "too_many_registrations": ("Too many registrations", "Too many registrations from your address; wait "
                                                         "Retry-After seconds."),
    "missing_token": ("Missing token", "Send Authorization: Bearer TOKEN."),
    "invalid_token": ("Invalid token", "The token is malformed, wrongly signed or not valid (yet)."),
    "token_expired": ("Token expired", "Log in again for a new token."),
    "invalid_api_key": ("Invalid API key", "The API key is unknown, revoked, expired or malformed."),
    "read_only_key": ("Read-only API key", "A read key may only read (GET, HEAD); use a full key or a login token "
                                           "to change something."),
    "too_many_api_keys": ("Too many API keys", "You hold as many API keys as allowed (API_KEYS_MAX_PER_USER); "
                                               "revoke one first."),
}


def type_uri(code: str) -> str:
    return TYPE_BASE + code


def title(code: str, status: int) -> str:
    """The code's title; a code left out of CODES gets its status's reason phrase."""
    known = CODES.get(code)
    return known[0] if known else _phrase(status)


def _phrase(status: int) -> str:
    if status == 413:
        return "Content Too Large"  # RFC 9110's name (Python 3.11 still says Request Entity Too Large)
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def body(status: int, code: str, message: str, instance: str | None = None) -> dict:
    """The problem details of one answer, with the older `error` object kept as it always was."""
    problem = {"type": type_uri(code), "title": title(code, status), "status": status, "detail": message}
    if instance:
        problem["instance"] = instance
    problem["code"] = code
    problem["error"] = {"code": code, "message": message}
    return problem


def encode(problem: dict) -> bytes:
    """As Flask's jsonify wrote the error body (compact, ASCII, a final newline), so the `error` object
    keeps its bytes."""
    return json.dumps(problem, separators=(",", ":")).encode() + b"\n"


def headers(status: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The answer's headers: its own, and Retry-After on every 429 and 503 that names none."""
    result = dict(extra or {})
    if status in (429, 503) and not any(name.lower() == "retry-after" for name in result):
        result["Retry-After"] = str(DEFAULT_RETRY_AFTER)
    return result


def raw_response(status: int, code: str, message: str, extra: dict[str, str] | None = None,
                 instance: str | None = None) -> bytes:
    """A complete HTTP/1.1 answer (closing the connection), for code that writes to the socket itself."""
    payload = encode(body(status, code, message, instance))
    lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"Content-Type: {MEDIA_TYPE}",
             f"Content-Length: {len(payload)}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers(status, extra).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
