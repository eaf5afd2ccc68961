"""Stored videos served to the probe (PyAV) and ffmpeg over loopback HTTP with Range support.

ffmpeg reads the upload straight from GridFS while it decodes, instead of waiting for a full
copy on disk: the read overlaps the conversion and no temp file holds the video. Range requests
let ffmpeg seek (an MP4 whose index sits at the end is read end first, then from the start).

Each video is reachable only under an unguessable path, only on 127.0.0.1, and only while its
job runs. A storage error while serving is remembered, so a conversion of a truncated read is
never taken for a finished one.
"""
from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.common import storage
from services.common.http_range import RangeNotSatisfiable, byte_range

log = logging.getLogger(__name__)


# Videos up to this size are read from storage once and then served from memory: the probe and ffmpeg
# each open a short clip three times (start, index at the end, start again), and loopback buffers take
# the whole rest of the file before they drop a connection, so each open read it all from storage.
MEMORY_MAX_BYTES = 4 * 1024 * 1024


class ServedVideo:
    """One video registered with the server; `url` is what ffmpeg opens."""

    def __init__(self, port: int, bucket, file_id, length: int):
        self.bucket, self.file_id, self.length = bucket, file_id, length
        self.path = "/" + secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{port}{self.path}"
        self.requests = 0
        self.bytes_sent = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._content: bytes | None = None  # a small video's bytes, once read
        self._reading = threading.Lock()

    def blocks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end] of the video: from storage, or from memory for a small one."""
        if self.length > MEMORY_MAX_BYTES:
            yield from storage.read_file(self.bucket, self.file_id, start, end)
            return
        with self._reading:  # ffmpeg's requests overlap: the first one reads, the others wait for it
            if self._content is None:
                content = b"".join(storage.read_file(self.bucket, self.file_id))
                if len(content) != self.length:  # never serve a short file as a whole one
                    raise OSError(f"stored video has {len(content)} of its {self.length} bytes")
                self._content = content
        yield self._content[start:end + 1]

    def record(self, sent: int, error: BaseException | None = None) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_sent += sent
            if error is not None and self.error is None:
                self.error = error


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args):  # ffmpeg's range requests are not worth a log line each
        pass

    def do_HEAD(self):
        self._answer(send_body=False)

    def do_GET(self):
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        video = self.server.videos.get(self.path)
        if video is None:
            self.send_error(404)
            return
        try:
            requested = byte_range(self.headers.get("Range"), video.length)
        except RangeNotSatisfiable as exc:
            self.send_response(416)
            self.send_header("Content-Range", exc.content_range)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = requested or (0, video.length - 1)
        if requested:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{video.length}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(max(end - start + 1, 0)))
        self.end_headers()
        if not send_body or video.length == 0:
            return
        sent = 0
        try:
            for block in video.blocks(start, end):
                self.wfile.write(block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            video.record(sent)  # ffmpeg seeks by dropping the connection: normal
            return
        except Exception as exc:  # storage failed mid-read: ffmpeg sees a short body
            log.warning("video read failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            video.record(sent, exc)
            self.close_connection = True
            return
        video.record(sent)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    videos: dict[str, ServedVideo]


class VideoServer:
    """One loopback HTTP server per converter process, started on first use."""

    def __init__(self):
        self._server: _Server | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self._start().server_address[1]

    def _start(self) -> _Server:
        with self._lock:
            if self._server is None:
                server = _Server(("127.0.0.1", 0), _Handler)
                server.videos = {}
                threading.Thread(target=server.serve_forever, name="video-source", daemon=True).start()
                self._server = server
            return self._server

    def serve(self, bucket, file_id, length: int) -> ServedVideo:
        """Register a stored file until `forget` (when its job ends)."""
        server = self._start()
        video = ServedVideo(server.server_address[1], bucket, file_id, length)
        server.videos[video.path] = video
        return video

    def forget(self, video: ServedVideo) -> None:
        if self._server is not None:
            self._server.videos.pop(video.path, None)
