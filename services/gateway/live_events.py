"""Live job events (`GET /jobs/<id>/events`): the places that bound them and the stream itself.

Each stream holds a gunicorn thread for as long as it lasts, so the process has EVENT_STREAMS_MAX places
(503 too_busy beyond) and one user may hold EVENT_STREAMS_PER_USER of them (429 too_many_streams beyond).
A place is given back exactly once, on every path: the stream's end (final status, job deleted), a
client that went away (noticed at the next poll, not at the next write), an error in the stream, and
the WSGI server's close() of the body, which is the only call a HEAD request or a failed write gets.
"""
from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
import weakref
from collections import Counter
from typing import Callable, Iterator

from services.common import config, job_view, jobs, ratelimit
from services.common.storage import job_records
from services.common.web import ApiError

from . import metrics, revisions

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often a live stream looks at its job (and at its client)
HEARTBEAT_SECONDS = 15  # a comment line this often keeps proxies from closing a quiet stream
RETRY_AFTER_SECONDS = "5"


class Place:
    """One taken stream place; release(reason) gives it back once, and a place dropped without a
    release (a response that was never sent nor closed) is given back when it is collected."""

    def __init__(self, places: "Places", user_id: str):
        self.opened = time.monotonic()
        self._finalizer = weakref.finalize(self, places.give_back, user_id, "abandoned", self.opened)
        self._places, self._user_id = places, user_id

    def release(self, reason: str) -> None:
        if self._finalizer.detach() is not None:  # detach() answers once: the first release wins
            self._places.give_back(self._user_id, reason, self.opened)


class Places:
    """This process' live-stream places, in all and per user."""

    def __init__(self, total: int, per_user: int):
        self.total, self.per_user = total, per_user
        self._lock = threading.RLock()  # re-entrant: a place collected by the GC gives itself back in any thread
        self._by_user: Counter[str] = Counter()

    def take(self, user_id: str) -> Place:
        with self._lock:
            if sum(self._by_user.values()) >= self.total:
                refused = "event_streams"
            elif self._by_user[user_id] >= self.per_user:
                refused = "per_user"
            else:
                self._by_user[user_id] += 1
                refused = None
            held = self._by_user[user_id]
        # the per-user cap in the RateLimit headers (of this server: each replica counts its own)
        ratelimit.report(ratelimit.Standing("event_streams", self.per_user, self.per_user - held,
                                            unit="concurrent-requests"))
        if refused:
            raise _refusal(refused, user_id, self.per_user)
        metrics.EVENT_STREAMS.inc()
        return Place(self, user_id)

    def give_back(self, user_id: str, reason: str, opened: float) -> None:
        with self._lock:
            self._by_user[user_id] -= 1
            if self._by_user[user_id] <= 0:
                del self._by_user[user_id]  # the counter holds only users with a stream open
        metrics.EVENT_STREAMS.dec()
        metrics.EVENT_STREAM_ENDS.labels(reason).inc()
        log.info("event stream ended", extra={"stream_end": reason, "user_id": user_id,
                                              "stream_seconds": round(time.monotonic() - opened, 3)})


def _refusal(what: str, user_id: str, per_user: int) -> ApiError:
    log.warning("event stream refused", extra={"refused": what, "user_id": user_id})
    if what == "per_user":
        metrics.EVENT_STREAMS_USER_LIMITED.inc()
        return ApiError(429, "too_many_streams", f"you already follow {per_user} jobs live on this server; close "
                        "a stream or poll the job", {"Retry-After": RETRY_AFTER_SECONDS})
    metrics.TOO_BUSY.labels("event_streams").inc()
    return ApiError(503, "too_busy", "too many live event streams on this server; poll the job or retry",
                    {"Retry-After": RETRY_AFTER_SECONDS})


_places = Places(1, 1)  # replaced by configure()


def configure() -> None:
    global _places
    _places = Places(config.env_int("EVENT_STREAMS_MAX"), config.env_int("EVENT_STREAMS_PER_USER"))


def open_stream(user_id: str) -> Place:
    """Take one of this process' places for `user_id`, or raise 503 too_busy / 429 too_many_streams."""
    return _places.take(user_id)


class EventStream:
    """A live stream's response body. The WSGI server calls close() after the last chunk, after a
    failed write, and for HEAD (whose body is never read): each gives the place back."""

    def __init__(self, chunks: Iterator[str], place: Place):
        self._chunks, self._place = chunks, place

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._place.release("closed")


def events(query: dict, last_event_id: str | None, place: Place, client: socket.socket | None,
           still_allowed: Callable[[], bool] = lambda: True) -> Iterator[str]:
    """Server-Sent Events of the job's view: now, then at every change, until a final status.
    The event id is the job's revision, so `Last-Event-ID` resumes without repeating a view.
    `still_allowed` is asked at every heartbeat: a revoked API key or an expired token ends the stream."""
    reason = "error"
    try:
        sent_rev = int(last_event_id) if (last_event_id or "").isdigit() else None
        reason = yield from _follow(query, sent_rev, client, still_allowed)
    except GeneratorExit:  # the server closed the body: a failed write
        reason = "closed"
        raise
    except Exception:
        log.exception("event stream failed", extra={"job_id": query.get("_id")})
        raise
    finally:
        place.release(reason)


def _follow(query: dict, sent_rev: int | None, client: socket.socket | None,
            still_allowed: Callable[[], bool]) -> Iterator[str]:
    """The stream's events; returns why it ended (final, deleted, client_gone, revoked)."""
    quiet_since, job, steady = time.monotonic(), None, False
    while True:
        job, steady = _current(query, job, steady)
        if job is None:
            yield "event: deleted\ndata: {}\n\n"
            return "deleted"
        if job.rev != sent_rev:
            yield f"id: {job.rev}\ndata: {json.dumps(job_view.view(job))}\n\n"
            sent_rev, quiet_since = job.rev, time.monotonic()
        if job.status in jobs.FINAL:
            return "final"
        if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            if not still_allowed():
                return "revoked"  # the stream just ends: a client that opens it again gets the 401
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        if client_gone(client, POLL_SECONDS):
            return "client_gone"


def _current(query: dict, last: jobs.Job | None, steady: bool) -> tuple[jobs.Job | None, bool]:
    """The job now (None: gone), and whether it stood still since `last`. A job that stood still at the
    last look has its revision read first (shared with the polls of the moment, revisions.py) and is
    read whole only when that moved: a stream of a queued job costs a share of a small read."""
    if last is not None and steady:
        rev = revisions.READS.revision(query)
        if rev == last.rev:
            return last, True
        if rev is None:
            return None, False
    job = job_records.find_job(query)
    return job, job is not None and last is not None and job.rev == last.rev


def client_gone(client: socket.socket | None, wait: float) -> bool:
    """Wait up to `wait` seconds for the client's side of the connection to close: True once it did
    (a write would only fail one heartbeat later, up to HEARTBEAT_SECONDS of a place held for nobody)."""
    if client is None:
        time.sleep(wait)
        return False
    started = time.monotonic()
    try:
        readable, _, _ = select.select([client], [], [], wait)
        if readable and client.recv(1, socket.MSG_PEEK) == b"":
            return True
    except ValueError:  # a TLS socket cannot peek, or the socket is closed: leave it to the next write
        pass
    except OSError:  # reset by the peer
        return True
    time.sleep(max(0.0, wait - (time.monotonic() - started)))  # bytes sent early (a pipelined request) wake no loop
    return False
