"""Conditional GETs of JSON resources (the job views and the job listings): a strong ETag and
`If-None-Match` → 304 Not Modified, so a client polling a job that did not change gets no body.

The ETag is a digest of the exact bytes of the JSON answer, not the job's `rev`: it must change
whenever any field of the view does, and some of them come from settings (expires_at from the
retention, link from PUBLIC_URL and LINK_SECRET) or from a newer gateway (fields added), which no
revision of the stored job sees. Same bytes, same ETag: a strong validator by construction. The read
of the job stays (it is the owner check too); what a 304 saves is the transfer and the client's work.
"""
from __future__ import annotations

import base64
import hashlib

from flask import Response, jsonify, request

# Any cache may keep the answer but must ask again each time (a job changes at any moment); only the
# user's own (private): the answer depends on the token.
CACHE_CONTROL = "private, no-cache"


def strong_etag(body: bytes) -> str:
    """The opaque tag (without quotes) of a representation: 128 bits of its SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:16]).rstrip(b"=").decode()


def json_response(payload: object, headers: dict[str, str] | None = None) -> Response:
    """`payload` as JSON with its ETag, or 304 with the same ETag and headers (no body) when the request's
    If-None-Match names it: Werkzeug's conditional response (RFC 9110 13.1.2: a weak comparison, so
    W/"tag" matches too, and * matches)."""
    response = jsonify(payload)
    response.set_etag(strong_etag(response.get_data()))
    response.headers.update({"Cache-Control": CACHE_CONTROL, **(headers or {})})
    return response.make_conditional(request)
