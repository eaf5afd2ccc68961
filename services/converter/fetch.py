"""One URL import's HTTP fetch: the source's bytes streamed into a sink (GridFS `videos`), guarded.

Every hop (the first URL and each redirect) passes the webhooks' guard against server-side request
forgery with the import's own allowed networks (services/common/callbacks.py `IMPORT`): http or https,
no credentials, every address the name resolves to public (or in IMPORT_ALLOWED_NETWORKS); the
connection then goes to that checked address (services/common/pinned_http.py), never to the name
again. At most IMPORT_MAX_REDIRECTS redirects are followed.

Limits: MAX_UPLOAD_BYTES (the upload limit) on Content-Length before reading and on the bytes while
reading; IMPORT_TIMEOUT_SECONDS for the whole fetch (every hop); IMPORT_STALL_SECONDS between bytes.
An HTML or text answer is refused before anything is stored (`refusal`). Failures are `FetchFailed`
(permanent: the source's fault, with a reason for the user) or `FetchRetry` (transient: 5xx, 408, 429,
a stall, a reset): the caller maps them onto the queue's retry rules.
"""
from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Callable, Protocol
from urllib.parse import urljoin, urlsplit

from services.common import config
from services.common.callbacks import IMPORT, CallbackRefused, Target, resolve
from services.common.pinned_http import Deadline, DeadlinePassed, PinnedHTTP, PinnedHTTPS

READ_SIZE = 256 * 1024
SNIFF_BYTES = 512  # what the first-bytes check looks at
USER_AGENT = "vid2mp3-import/1"
REDIRECTS = (301, 302, 303, 307, 308)
RETRYABLE_4XX = (408, 425, 429)  # the source asks to come back later
# getaddrinfo cannot be given a timeout: it runs here and the fetch stops waiting at its deadline.
_resolver = ThreadPoolExecutor(max_workers=2, thread_name_prefix="import-dns")

# The first bytes of media containers ffmpeg reads (the probe's whitelist has the last word).
MEDIA_SIGNATURES = (
    (4, b"ftyp"),  # MP4, MOV, M4A, 3GP
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska, WebM
    (0, b"RIFF"),  # AVI, WAV
    (0, b"OggS"), (0, b"FLV"), (0, b"fLaC"), (0, b"ID3"),
    (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"),  # MPEG program stream, MPEG video
    (0, b"\x30\x26\xb2\x75"),  # ASF, WMV
    (0, b"\x47"),  # MPEG transport stream sync byte
)
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "application/javascript")


class FetchFailed(Exception):
    """The source cannot become a job's video; the message says why, for the user."""


class FetchRetry(Exception):
    """This attempt failed for a reason that may pass (5xx, a stall, a reset): try again later."""


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class Fetched:
    size: int
    content_type: str | None
    final_url: str
    redirects: int


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    timeout: float
    stall: float
    max_redirects: int

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(config.env_int("MAX_UPLOAD_BYTES"), config.env_float("IMPORT_TIMEOUT_SECONDS"),
                   config.env_float("IMPORT_STALL_SECONDS"), config.env_int("IMPORT_MAX_REDIRECTS"))


# ---------------------------------------------------------------- pure verdicts


def shown_url(url: str) -> str:
    """The URL as logs and reasons may show it: scheme, host, port and path; no query or fragment (they
    may carry the source's credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def status_verdict(code: int) -> str | None:
    """None for an answer worth reading; otherwise 'retry' or 'fail'."""
    if 200 <= code < 300 and code != 204:
        return None
    if code >= 500 or code in RETRYABLE_4XX:
        return "retry"
    return "fail"


def refusal(content_type: str | None, head: bytes) -> str | None:
    """Why an answer is not a video (HTML, text), from its Content-Type and first bytes; None when it may be."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        return f"not a video: the URL answered a web page ({kind}); give the address of the video file itself"
    if kind.startswith(TEXT_TYPES):
        return f"not a video: the URL answered {kind}"
    if any(head[offset:offset + len(magic)] == magic for offset, magic in MEDIA_SIGNATURES):
        return None
    start = head.lstrip()[:64].lower()
    if start.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<")):
        return "not a video: the URL answered a web page (its first bytes are HTML)"
    if head and _looks_like_text(head):
        return "not a video: the URL answered text"
    return None  # unknown binary: the probe decides (its container whitelist)


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in decoded)


def too_large(size: int, limit: int) -> str:
    return f"the source is larger than the limit of {limit} bytes (MAX_UPLOAD_BYTES)" if size < 0 else (
        f"the source is {size} bytes, larger than the limit of {limit} bytes (MAX_UPLOAD_BYTES)")


# ---------------------------------------------------------------- the fetch


def fetch(url: str, sink: Sink, on_progress: Callable[[int, int | None], None],
          limits: Limits | None = None) -> Fetched:
    """Follow `url` (redirects checked hop by hop) and write the body into `sink`; `on_progress(bytes,
    total)` after every block (it may raise to stop). FetchFailed or FetchRetry when it does not work."""
    limits = limits or Limits.from_settings()
    ends_at = time.monotonic() + limits.timeout
    for hop in range(limits.max_redirects + 1):
        location = _one_hop(url, sink, on_progress, limits, ends_at)
        if isinstance(location, Fetched):
            return Fetched(location.size, location.content_type, url, hop)
        url = location
    raise FetchFailed(f"more than {limits.max_redirects} redirects (IMPORT_MAX_REDIRECTS)")


def _one_hop(url: str, sink: Sink, on_progress, limits: Limits, ends_at: float) -> Fetched | str:
    """One request: the Fetched body, or the next URL of a redirect."""
    deadline = Deadline(max(ends_at - time.monotonic(), 0.001))
    connection = None
    try:
        target = _resolve(url, deadline)
        kind = PinnedHTTPS if target.scheme == "https" else PinnedHTTP
        connection = kind(target, deadline, stall_seconds=min(limits.stall, deadline.remaining()))
        connection.request("GET", target.path, headers={
            "User-Agent": USER_AGENT, "Accept": "video/*, audio/*;q=0.9, */*;q=0.5", "Accept-Encoding": "identity"})
        response = connection.getresponse()
        if response.status in REDIRECTS:
            return _redirect_target(url, response)
        _check_status(response)
        return _read_body(response, sink, on_progress, limits, deadline)
    except CallbackRefused as exc:
        raise FetchFailed(str(exc)) from None
    except (DeadlinePassed, OSError, http.client.HTTPException) as exc:
        if deadline.passed:
            raise FetchFailed(f"the source did not arrive within {limits.timeout:g} s "
                              "(IMPORT_TIMEOUT_SECONDS)") from None
        if isinstance(exc, TimeoutError):
            raise FetchRetry(f"the source stopped sending for {limits.stall:g} s") from None
        raise FetchRetry(f"fetching {shown_url(url)} failed: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        deadline.release()  # before the close: the timer must not touch a descriptor that is reused
        if connection is not None:
            connection.close()


def _resolve(url: str, deadline: Deadline) -> Target:
    future = _resolver.submit(resolve, url, IMPORT)
    try:
        return future.result(timeout=deadline.remaining())
    except FutureTimeout:
        deadline.passed = True
        raise DeadlinePassed() from None


def _redirect_target(url: str, response: http.client.HTTPResponse) -> str:
    location = response.getheader("Location")
    if not location:
        raise FetchFailed(f"the source answered HTTP {response.status} without a Location")
    return urljoin(url, location.strip())


def _check_status(response: http.client.HTTPResponse) -> None:
    verdict = status_verdict(response.status)
    if verdict is None:
        return
    said = f"the source answered HTTP {response.status} {response.reason}".rstrip()
    raise (FetchRetry if verdict == "retry" else FetchFailed)(said)


def _declared_length(response: http.client.HTTPResponse) -> int | None:
    try:
        value = int(response.getheader("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _read_body(response: http.client.HTTPResponse, sink: Sink, on_progress, limits: Limits,
               deadline: Deadline) -> Fetched:
    total = _declared_length(response)
    if total is not None and total > limits.max_bytes:
        raise FetchFailed(too_large(total, limits.max_bytes))  # before reading a byte of it
    content_type = response.getheader("Content-Type")
    received, head = 0, bytearray()  # nothing is stored before the first bytes are judged
    while True:
        block = response.read1(READ_SIZE)  # what has arrived: a trickle still shows progress and stalls
        if deadline.passed:  # a cut socket reads as the end of the body: not an answer in time
            raise DeadlinePassed()
        if not block:
            break
        received += len(block)
        if received > limits.max_bytes:
            raise FetchFailed(too_large(-1, limits.max_bytes))
        if head is not None:
            head += block
            if len(head) >= SNIFF_BYTES:
                _write_judged(content_type, head, sink)
                head = None
        else:
            sink.write(block)
        on_progress(received, total)
    if total is not None and received < total:  # read1 reports a cut connection as the end
        raise FetchRetry(f"the connection ended after {received} of {total} bytes")
    if received == 0:
        raise FetchFailed("the source is empty")
    if head is not None:
        _write_judged(content_type, head, sink)
    return Fetched(received, content_type, "", 0)


def _write_judged(content_type: str | None, head: bytearray, sink: Sink) -> None:
    reason = refusal(content_type, bytes(head[:SNIFF_BYTES]))
    if reason:
        raise FetchFailed(reason)
    sink.write(bytes(head))
