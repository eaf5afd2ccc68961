"""Conditional GETs of JSON resources (the job views and the job listings): a strong ETag and
`If-None-Match` → 304 Not Modified, so a client polling a job that did not change gets no body.

A listing's ETag is a digest of the exact bytes of the JSON answer. A job's is a digest of its id, its
`rev` and `VIEW_FINGERPRINT`, so that a poll of an unchanged job is answered from one indexed read of
`rev` (which is the owner check too), without building the view (issue 24). It changes whenever a field
of the view does: every change of the stored job that its owner can see bumps `rev` (the contract of
services/common/jobs.py that the live events rely on too), and the fields that come from settings
(expires_at from the retention, link from PUBLIC_URL and LINK_SECRET) or from the gateway's code (fields
added) are in the fingerprint. Same job revision under the same fingerprint, same bytes: still a
strong validator. For the same reason the rendered body of a job's view is kept by its ETag
(`VIEWS`): a poll of a job this process showed at that revision before costs the read of `rev` and no
view, JSON or full read (issue 24).
"""
from __future__ import annotations

import base64
import hashlib
import inspect
import threading
from collections import OrderedDict
from functools import lru_cache

from typing import Callable

from flask import Response, jsonify, request

from services.common import config, job_view, jobs, links, release

from . import metrics

# Any cache may keep the answer but must ask again each time (a job changes at any moment); only the
# user's own (private): the answer depends on the token.
CACHE_CONTROL = "private, no-cache"


def strong_etag(body: bytes) -> str:
    """The opaque tag (without quotes) of a representation: 128 bits of its SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:16]).rstrip(b"=").decode()


# What a job's view depends on besides the stored job: the settings it reads and the code that builds it.
VIEW_SETTINGS = ("PUBLIC_URL", "LINK_SECRET", "RESULT_RETENTION_SECONDS", "VIDEO_RETENTION_SECONDS",
                 "SERVICE_VERSION", "GIT_SHA")
VIEW_MODULES = (job_view, jobs, links)


@lru_cache(maxsize=1)
def view_fingerprint() -> bytes:
    """A digest of the view's settings and of its modules' source (a gateway of other code shows other
    bytes), computed once per process."""
    digest = hashlib.sha256(release.version().encode())
    for name in VIEW_SETTINGS:
        digest.update(f"\0{name}={config.env(name)}".encode())
    for module in VIEW_MODULES:
        digest.update(_source(module))
    return digest.digest()


def _source(module) -> bytes:
    try:
        return inspect.getsource(module).encode()
    except (OSError, TypeError):  # shipped without sources: the release version above tells builds apart
        return module.__name__.encode()


def job_etag(job_id: str, rev: int) -> str:
    """The ETag (without quotes) of a job's view at revision `rev`."""
    return strong_etag(view_fingerprint() + f"\0{job_id}\0{rev}".encode())


class ViewBodies:
    """JSON bodies of job views by their ETag (which names exactly one body), the least recently used
    dropped past `max_bytes` in all; shared by the process' threads."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self._size = max_bytes, 0
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        with self._lock:
            body = self._bodies.get(etag)
            if body is not None:
                self._bodies.move_to_end(etag)
            return body

    def put(self, etag: str, body: bytes) -> None:
        with self._lock:
            if etag in self._bodies:
                return
            self._bodies[etag] = body
            self._size += len(body)
            while self._size > self.max_bytes:
                self._size -= len(self._bodies.popitem(last=False)[1])


# ~2,000 views of a few hundred bytes to a few KB: the jobs being polled on this process
VIEWS = ViewBodies(2 * 1024 * 1024)


def job_view_response(job_id: str, rev: int, build: Callable[[], tuple[dict, int]]) -> Response:
    """The 200 of a job's view at revision `rev`: its body kept from an earlier answer, else `build()`'s
    view (read anew: it answers the view and the revision it shows, which may be newer than `rev`)."""
    etag = job_etag(job_id, rev)
    body = VIEWS.get(etag)
    metrics.JOB_VIEWS.labels("cached" if body is not None else "built").inc()
    if body is None:
        view, rev = build()
        etag, body = job_etag(job_id, rev), jsonify(view).get_data()
        VIEWS.put(etag, body)
    response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response.make_conditional(request)


def unchanged(etag: str) -> bool:
    """Whether the request's If-None-Match names `etag` (RFC 9110 13.1.2: weak comparison; * matches)."""
    return request.if_none_match.contains_weak(etag)


def not_modified(etag: str) -> Response:
    """304 with the ETag and the caching headers of the 200 it stands for, and no body."""
    return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": CACHE_CONTROL})


def json_response(payload: object, headers: dict[str, str] | None = None, etag: str | None = None) -> Response:
    """`payload` as JSON with its ETag (`etag`, else the digest of the body), or 304 with the same ETag
    and headers (no body) when the request's If-None-Match names it: Werkzeug's conditional response
    (RFC 9110 13.1.2: a weak comparison, so W/"tag" matches too, and * matches)."""
    response = jsonify(payload)
    response.set_etag(etag or strong_etag(response.get_data()))
    response.headers.update({"Cache-Control": CACHE_CONTROL, **(headers or {})})
    return response.make_conditional(request)
