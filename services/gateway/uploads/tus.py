"""tus 1.0.0 resumable uploads at /uploads/: the core protocol and the creation, termination and
expiration extensions. The bytes and the state live in MongoDB (resumable.py), so any gateway
replica can take the next PATCH; the finished upload becomes a job exactly like a multipart one
(intake.create_job)."""
from __future__ import annotations

import base64
import binascii
import logging
import time

from flask import Blueprint, Response, request
from opentelemetry import trace
from werkzeug.http import http_date

from services.common import config
from services.common.options import Options
from services.common.storage import files
from services.common.storage.connection import new_id
from services.common.storage.errors import DuplicateRecord
from services.common.web import ApiError, streams_body

from .. import auth_client, metrics, quotas
from . import intake, resumable

log = logging.getLogger(__name__)
bp = Blueprint("tus", __name__, url_prefix="/uploads")

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
OCTET_STREAM = "application/offset+octet-stream"
MAX_METADATA_CHARS = 8192


# ---------------------------------------------------------------- what the metadata asks for


def upload_options(metadata: dict[str, str], owner: str) -> tuple[dict, list[dict], str | None]:
    """The output options carried in Upload-Metadata (every key but `filename`): the first output's, every
    output's when the `outputs` key was given (else []), and the preset named; resolved and checked like the
    multipart form fields (a bad one answers 400 before anything is stored)."""
    fields = {key: value for key, value in metadata.items() if key not in ("filename", "callback_url")}
    first, every, preset = intake.requested(fields, owner)
    return first.to_dict(), [each.to_dict() for each in every], preset


# ---------------------------------------------------------------- protocol plumbing


@bp.before_request
def _require_tus_version():
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise ApiError(412, "unsupported_tus_version", f"send the header Tus-Resumable: {TUS_VERSION}",
                       {"Tus-Version": TUS_VERSION})


@bp.after_request
def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers["Cache-Control"] = "no-store"  # an offset is only true now
    return response


def _count_header(name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ApiError(400, "invalid_header", f"{name} must be a non-negative integer")
    return int(value)


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (the value may be absent)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_CHARS:
        raise ApiError(400, "invalid_metadata", f"Upload-Metadata longer than {MAX_METADATA_CHARS} characters")
    result: dict[str, str] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if len(parts) > 2 or not key or not key.isascii() or key in result:
            raise ApiError(400, "invalid_metadata", "Upload-Metadata must be distinct `key base64value` pairs")
        try:
            result[key] = base64.b64decode(parts[1], validate=True).decode("utf-8") if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(400, "invalid_metadata", f"the value of {key!r} is not base64 of UTF-8 text") from None
    return result


def _expires_header(upload: dict) -> dict:
    return {} if upload.get("completed") else {"Upload-Expires": http_date(upload["expires"])}


def _owned(upload_id: str, user: dict) -> dict:
    """The caller's upload; 404 for an unknown or another user's id, 410 once it expired."""
    upload = resumable.find(upload_id, user["sub"])
    if upload is None:
        raise ApiError(404, "not_found", "no such upload")
    if not upload["completed"] and upload["expires"] < time.time():
        raise ApiError(410, "expired", "the upload expired before it was finished; start a new one")
    return upload


# ---------------------------------------------------------------- routes


@bp.route("/", methods=["OPTIONS"], provide_automatic_options=False)
@bp.route("/<upload_id>", methods=["OPTIONS"], provide_automatic_options=False)
def options(upload_id: str | None = None):
    """What this server speaks (no token needed)."""
    return "", 204, {"Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
                     "Tus-Max-Size": str(config.env_int("MAX_UPLOAD_BYTES"))}


@bp.route("/", methods=["POST"], provide_automatic_options=False)
def create():
    """Creation: an empty upload of Upload-Length bytes; the body goes in by PATCH."""
    user = auth_client.current_user()
    if request.headers.get("Upload-Defer-Length"):
        raise ApiError(400, "invalid_header", "Upload-Defer-Length is not supported: send Upload-Length")
    length = _count_header("Upload-Length")
    max_bytes = config.env_int("MAX_UPLOAD_BYTES")
    if length > max_bytes:
        raise ApiError(413, "payload_too_large", f"upload larger than the limit of {max_bytes} bytes")
    if length == 0:
        raise ApiError(400, "empty_file", "the upload is empty")
    if request.content_length:
        raise ApiError(400, "unexpected_body", "create the upload without a body, then PATCH its bytes")
    metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    filename = intake.safe_filename(metadata.get("filename"))
    options, outputs, preset = upload_options(metadata, user["sub"])
    callback = intake.checked_callback_url(metadata.get("callback_url"))
    held = intake.hold_idempotency_key(user)
    if isinstance(held, str):
        return _replayed(user, held)
    try:
        upload_id = quotas.admit(user, length, reserve=lambda upload_id: resumable.create(
            upload_id, user["sub"], user.get("email"), length, filename, options, job_id=new_id(),
            callback_url=callback, outputs=outputs, preset=preset))
        upload = resumable.find(upload_id, user["sub"])
        if held:
            held.attach(upload["job_id"])  # the job this upload will make, chosen now
    except BaseException:
        if held:
            held.release()
        raise
    metrics.TUS_UPLOADS.labels("created").inc()
    log.info("tus upload created", extra={"upload_id": upload["_id"], "size": length})
    return "", 201, {"Location": f"/uploads/{upload['_id']}", **_expires_header(upload)}


def _replayed(user: dict, job_id: str):
    """A repeated Idempotency-Key: the first creation's upload (resume it with HEAD), not a new one."""
    upload = resumable.of_job(job_id, user["sub"])
    if upload is None:
        raise ApiError(410, "expired", "the upload of this Idempotency-Key is gone; its job is in Job-Id",
                       {"Job-Id": job_id})
    return "", 201, {"Location": f"/uploads/{upload['_id']}", "Idempotent-Replayed": "true",
                     **_expires_header(upload)}


@bp.route("/<upload_id>", methods=["HEAD"], provide_automatic_options=False)
def head(upload_id: str):
    """Where to resume: the offset the server has."""
    upload = resumable.recover(files.videos(), _owned(upload_id, auth_client.current_user()))
    if upload["offset"] == upload["length"] and not upload["completed"]:
        _finish(upload)  # the gateway that received the last byte died before making the job
    elif not upload["completed"]:
        resumable.mark_headed(upload_id)
    headers = {"Upload-Offset": str(upload["offset"]), "Upload-Length": str(upload["length"]),
               **_expires_header(upload)}
    if upload["offset"] == upload["length"]:
        headers["Job-Id"] = upload["job_id"]
    return "", 200, headers


@bp.route("/<upload_id>", methods=["PATCH"], provide_automatic_options=False)
@streams_body
def patch(upload_id: str):
    """Append the body at Upload-Offset; the last byte makes the job (its id in Job-Id)."""
    with intake.slot():  # a PATCH body holds its thread as long as its client is slow, like an upload
        return _patch(upload_id)


def _patch(upload_id: str):
    user = auth_client.current_user()
    if request.mimetype != OCTET_STREAM:
        raise ApiError(415, "unsupported_media_type", f"send the bytes as Content-Type: {OCTET_STREAM}")
    offset = _count_header("Upload-Offset")
    upload = resumable.recover(files.videos(), _owned(upload_id, user))
    if offset != upload["offset"]:
        raise _offset_conflict(upload)
    remaining = upload["length"] - offset
    if request.content_length is not None and request.content_length > remaining:
        raise ApiError(413, "payload_too_large", f"the body goes past Upload-Length: {remaining} bytes are left")
    token = new_id()
    locked = resumable.lock(upload_id, user["sub"], offset, token)
    if locked is None:
        raise _lock_refused(upload_id, user)
    resumed = offset > 0 and bool(locked["headed"])
    if resumed:
        metrics.TUS_UPLOADS.labels("resumed").inc()
    trace.get_current_span().set_attributes({"tus.upload_id": upload_id, "tus.offset": offset, "tus.resumed": resumed})
    return _receive(locked, token, remaining)


def _offset_conflict(upload: dict) -> ApiError:
    return ApiError(409, "offset_mismatch", f"the upload is at offset {upload['offset']}; HEAD it and resume there",
                    {"Upload-Offset": str(upload["offset"])})


def _lock_refused(upload_id: str, user: dict) -> ApiError:
    """Why the lock was refused: the offset moved (409), or another PATCH is running (423)."""
    upload = _owned(upload_id, user)
    if upload["lock_until"] < time.time() or upload["completed"]:
        return _offset_conflict(upload)
    return ApiError(423, "upload_locked", "another PATCH is writing this upload; HEAD it and resume later",
                    {"Retry-After": "5"})


class _Dropped(Exception):
    """The client went away in the middle of the body."""


def _read(size: int) -> bytes:
    try:
        return request.stream.read(size)
    except Exception as exc:  # werkzeug, gunicorn and the socket each say "the client left" their own way
        raise _Dropped() from exc


def _receive(upload: dict, token: str, remaining: int):
    """Stream the body into storage; whatever arrived is kept, even when the client drops."""
    writer = resumable.ResumableWriter(files.videos(), upload, token)
    received, overflow = 0, False
    try:
        while data := _read(min(intake.READ_SIZE, remaining - received + 1)):
            overflow = received + len(data) > remaining
            writer.write(data[:remaining - received])
            received += len(data)
            if overflow:
                break
        writer.commit()
    except resumable.LockLost:
        raise ApiError(409, "upload_locked", "another PATCH took this upload over; HEAD it and resume") from None
    except _Dropped:
        writer.commit()
        log.info("tus patch cut short", extra={"upload_id": upload["_id"], "offset": writer.offset})
        raise ApiError(400, "incomplete_body", "the connection ended in the middle of the body") from None
    except BaseException:
        resumable.unlock(upload["_id"], token)
        raise
    trace.get_current_span().set_attribute("tus.received_bytes", writer.offset - upload["offset"])
    return _patched(dict(upload, offset=writer.offset), overflow)


def _patched(upload: dict, overflow: bool):
    headers = {"Upload-Offset": str(upload["offset"])}
    if upload["offset"] == upload["length"]:
        headers["Job-Id"] = _finish(upload)
    else:
        upload["expires"] = time.time() + resumable.expiry_seconds()
        headers.update(_expires_header(upload))
    if overflow:
        raise ApiError(413, "payload_too_large", "the body went past Upload-Length; the bytes up to it are kept",
                       headers)
    return "", 204, headers


def _finish(upload: dict) -> str:
    """The last byte is in: the file is closed and its job made (twice is harmless); the job id."""
    try:
        resumable.finish_file(files.videos(), upload, {"content_type": None, "original_name": upload["filename"]})
    except DuplicateRecord:
        pass  # another finisher (a HEAD at the same moment) closed it
    # Its bytes came over many requests (and gateways): no one writer saw them all, so they are read back.
    stored = intake.StoredUpload(upload["_id"], upload["filename"], upload["length"], None,
                                 Options.from_dict(upload.get("options")),
                                 outputs=[Options.from_dict(each) for each in upload.get("outputs") or []],
                                 fields={"callback_url": upload.get("callback_url") or ""},
                                 sha256=intake.stored_sha256(upload["_id"]), preset=upload.get("preset"))
    owner = {"sub": upload["owner"], "email": upload.get("owner_email")}
    job = intake.create_job(owner, stored, job_id=upload["job_id"])
    if resumable.mark_completed(upload["_id"]):
        metrics.TUS_UPLOADS.labels("completed").inc()
        log.info("tus upload completed", extra={"upload_id": upload["_id"], "job_id": job.id})
    return job.id


@bp.route("/<upload_id>", methods=["DELETE"], provide_automatic_options=False)
def terminate(upload_id: str):
    """Termination: the unfinished upload and its bytes go (a finished one's bytes are its job's)."""
    user = auth_client.current_user()
    upload = resumable.find(upload_id, user["sub"])
    if upload is None:
        raise ApiError(404, "not_found", "no such upload")
    if upload["lock_until"] > time.time():
        raise ApiError(423, "upload_locked", "a PATCH is writing this upload; try again when it ends",
                       {"Retry-After": "5"})
    resumable.remove(upload_id, keep_bytes=upload["completed"])
    metrics.TUS_UPLOADS.labels("terminated").inc()
    return "", 204
