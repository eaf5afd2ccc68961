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
(`VIEWS`): a poll of a job that stood still since this process last showed it costs the read of `rev`
and no view, JSON or full read; a job that keeps changing (converting) is read whole at once, as before
(issue 24). Polls waiting at the same moment share their reads of `rev` (revisions.py).
"""
from __future__ import annotations

import base64
import hashlib
import inspect
import threading
from collections import OrderedDict
from functools import lru_cache

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
    dropped past `max_bytes` in all; and, for the last `max_jobs` jobs answered, their revision then and
    whether it was the one answered before (a job that stands still, or one that keeps changing). Shared
    by the process' threads."""

    def __init__(self, max_bytes: int, max_jobs: int):
        self.max_bytes, self.max_jobs, self._size = max_bytes, max_jobs, 0
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._answered: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        with self._lock:
            body = self._bodies.get(etag)
            if body is not None:
                self._bodies.move_to_end(etag)
            return body

    def put(self, etag: str, body: bytes) -> None:
        with self._lock:
            if etag in self._bodies or len(body) > self.max_bytes:
                return
            self._bodies[etag] = body
            self._size += len(body)
            while self._size > self.max_bytes:
                self._size -= len(self._bodies.popitem(last=False)[1])

    def answered(self, job_id: str, rev: int) -> None:
        with self._lock:
            before = self._answered.pop(job_id, (None, False))[0]
            self._answered[job_id] = (rev, rev == before)
            if len(self._answered) > self.max_jobs:
                self._answered.popitem(last=False)

    def steady(self, job_id: str) -> bool:
        """Whether the last two answers of the job showed the same revision: its next poll is likely one
        more of it (read its revision alone first), not a change (read the whole job at once)."""
        with self._lock:
            return self._answered.get(job_id, (0, False))[1]


# ~2,000 views of a few hundred bytes to a few KB: the jobs being polled on this process
VIEWS = ViewBodies(2 * 1024 * 1024, 20_000)


def kept_view(job_id: str, rev: int, etag: str) -> Response | None:
    """The 200 of the job's view at revision `rev` (whose ETag is `etag`) from the body this process kept;
    None without one."""
    body = VIEWS.get(etag)
    return None if body is None else _view_response(job_id, rev, etag, body, "cached")


def view_of(job: jobs.Job) -> Response:
    """The 200 of `job`'s view, read just now: the body kept for its revision, else built (and kept)."""
    etag = job_etag(job.id, job.rev)
    return kept_view(job.id, job.rev, etag) or _view_response(
        job.id, job.rev, etag, jsonify(job_view.view(job)).get_data(), "built")


def _view_response(job_id: str, rev: int, etag: str, body: bytes, how: str) -> Response:
    if how == "built":
        VIEWS.put(etag, body)
    VIEWS.answered(job_id, rev)
    metrics.JOB_VIEWS.labels(how).inc()
    if request.if_none_match and unchanged(etag):  # the job changed to the revision the client has
        return not_modified(etag)
    # Only If-None-Match can apply to a job's view (it has no Last-Modified), so Werkzeug's
    # make_conditional, a tenth of a poll's CPU, is not needed here.
    return Response(body, mimetype="application/json", headers=_validator_headers(etag))


def unchanged(etag: str) -> bool:
    """Whether the request's If-None-Match names `etag` (RFC 9110 13.1.2: weak comparison; * matches)."""
    return request.if_none_match.contains_weak(etag)


def not_modified(etag: str) -> Response:
    """304 with the ETag and the caching headers of the 200 it stands for, and no body."""
    return Response(status=304, headers=_validator_headers(etag))


def _validator_headers(etag: str) -> dict[str, str]:
    return {"ETag": f'"{etag}"', "Cache-Control": CACHE_CONTROL}


def json_response(payload: object, headers: dict[str, str] | None = None) -> Response:
    """`payload` as JSON with the digest of its body as ETag, or 304 with the same ETag and headers (no
    body) when the request's If-None-Match names it: Werkzeug's conditional response (RFC 9110 13.1.2: a
    weak comparison, so W/"tag" matches too, and * matches)."""
    response = jsonify(payload)
    response.headers.update({**_validator_headers(strong_etag(response.get_data())), **(headers or {})})
    return response.make_conditional(request)
