"""Stored videos served to the probe (PyAV) and ffmpeg over loopback HTTP with Range support
(small ones are copied to the job's work folder instead: LocalCopy).

ffmpeg reads the upload straight from GridFS while it decodes, instead of waiting for a full
copy on disk: the read overlaps the conversion and no temp file holds the video. Range requests
let ffmpeg seek (an MP4 whose index sits at the end is read end first, then from the start).

Each video is reachable only under an unguessable path, only on 127.0.0.1, and only while its
job runs. A storage error while serving is remembered, so a conversion of a truncated read is
never taken for a finished one.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.common.http_range import RangeNotSatisfiable, byte_range
from services.common.messaging import TransientError
from services.common.storage import files

log = logging.getLogger(__name__)


# Videos up to this size are copied into the job's work folder and read by the probe and ffmpeg as a
# plain file: they open a short clip three times (start, index at the end, start again), and each
# loopback HTTP open costs more than copying the whole clip (~20 ms a job on a 20 s clip).
LOCAL_COPY_MAX_BYTES = 4 * 1024 * 1024


class LocalCopy:
    """A small video copied from storage into `folder`; `url` is the file's path. Same attributes as
    ServedVideo, so the converter treats both alike."""

    requests = 1
    error: BaseException | None = None  # a failed copy raises instead: nothing is left to read short

    def __init__(self, bucket, stored: dict, folder: str):
        """`stored`: the video's file_info."""
        file_id, length = stored["_id"], stored["length"]
        self.length, self.url = length, os.path.join(folder, "source")
        try:
            with open(self.url, "wb") as copy:
                blocks = files.read_file(bucket, file_id, first_window=files.CHUNK_WINDOW, info=stored)
                self.bytes_sent = sum(copy.write(block) for block in blocks)
        except Exception as exc:
            raise TransientError(f"reading the video from storage failed: {type(exc).__name__}") from exc
        if self.bytes_sent != length:  # never convert a short file as a whole one
            raise TransientError(f"stored video has {self.bytes_sent} of its {length} bytes")


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
            for block in files.read_file(video.bucket, video.file_id, start, end):
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
