"""POST /jobs: a URL import, a job whose video a converter fetches from `source_url` (http or https).

The request only checks and records: the body (JSON object, or form-urlencoded) carries `source_url`,
the output options and `callback_url` as a multipart upload's form fields do; the URL passes the
webhooks' guard with the import's own allowed networks (services/common/callbacks.py `IMPORT`, name
resolved: every address must be allowed); the quotas admit it like an upload (its size is not known
yet: the converter checks the stored bytes once fetched). The job is then made by intake.create_job
with status `fetching`; the converter fetches it (services/converter/importing.py).
"""
from __future__ import annotations

import json
import posixpath
from urllib.parse import unquote, urlsplit

from flask import request

from services.common import callbacks
from services.common.web import ApiError

from .. import quotas
from .intake import StoredUpload, checked_callback_url, requested, safe_filename

MAX_FIELDS = 32  # as a multipart upload's form fields


def receive(user: dict) -> StoredUpload:
    """The import request, checked and admitted: a StoredUpload whose video is still to be fetched."""
    fields = request_fields()
    source_url = checked_source_url(fields.pop("source_url", None))
    if "callback_url" in fields:
        fields["callback_url"] = checked_callback_url(fields["callback_url"]) or ""
    options, outputs, preset = requested(fields, user["sub"])
    video_id = quotas.admit(user, 0)  # the size is unknown until fetched: counted then (importing.py)
    return StoredUpload(video_id, filename_of(source_url), 0, None, options, outputs, fields, preset=preset,
                        source_url=source_url)


def request_fields() -> dict[str, str]:
    """The body's fields as text, as multipart form fields would be (a JSON list or object as JSON text)."""
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", 'send a JSON object, e.g. {"source_url": "https://…/talk.mp4"}')
        fields = {str(name): _text(value) for name, value in body.items() if value is not None}
    elif request.mimetype == "application/x-www-form-urlencoded":
        fields = {name: request.form[name] for name in request.form}
    else:
        raise ApiError(415, "unsupported_media_type",
                       "send the import as application/json (or form fields) with a source_url")
    if len(fields) > MAX_FIELDS:
        raise ApiError(400, "invalid_option", f"more than {MAX_FIELDS} fields")
    return fields


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def checked_source_url(value: str | None) -> str:
    """The URL, if it may be fetched: http(s), no credentials, its host resolving to allowed addresses only
    (checked again at every hop and connect by the converter); 400 invalid_source_url otherwise."""
    if value is None or not value.strip():
        raise ApiError(400, "invalid_source_url", "source_url is required: the http(s) address of the video")
    try:
        url = callbacks.callback_url(value, callbacks.IMPORT)
        callbacks.resolve(url, callbacks.IMPORT)
    except callbacks.CallbackRefused as exc:
        raise ApiError(400, "invalid_source_url", str(exc)) from None
    return url


def filename_of(url: str) -> str:
    """The job's file name: the URL path's last segment (no query), or `video`."""
    return safe_filename(posixpath.basename(unquote(urlsplit(url).path)))
