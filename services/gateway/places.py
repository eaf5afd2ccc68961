"""Places: how many long exchanges of one kind (uploads, downloads) a gateway process serves at once.

Each holds a thread for as long as its client is slow, and gunicorn_conf adds a thread per place, so
the GUNICORN_THREADS threads stay free for short requests. Beyond its places a kind answers 503
too_busy with Retry-After, and the refusal is counted and logged.
"""
from __future__ import annotations

import logging
import math
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from flask import Response
from prometheus_client import Gauge
from werkzeug.wsgi import ClosingIterator

from services.common import config
from services.common.errors import TooBusy
from services.common.gunicorn_worker import SPARE_CONNECTIONS, reading_buffer_bytes

from . import metrics

log = logging.getLogger(__name__)


class Places:
    def __init__(self, what: str, setting: str, in_progress: Gauge, retry_after: int):
        self.what, self.setting, self.in_progress, self.retry_after = what, setting, in_progress, retry_after
        self._free: threading.BoundedSemaphore | None = None  # made at first use: settings are read then

    def take(self) -> Callable[[], None]:
        """One place, or TooBusy (too_busy); returns its release, which may be called any number of times."""
        if self._free is None:
            self._free = threading.BoundedSemaphore(config.env_int(self.setting))
        if not self._free.acquire(blocking=False):
            metrics.TOO_BUSY.labels(self.what).inc()
            log.warning("request refused: every place is taken", extra={"what": self.what,
                                                                       "places": config.env_int(self.setting)})
            raise TooBusy("too_busy", f"too many {self.what} in progress on this server; retry shortly",
                          retry_after=self.retry_after)
        self.in_progress.inc()
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self.in_progress.dec()
                self._free.release()

        return release

    @contextmanager
    def hold(self) -> Iterator[None]:
        release = self.take()
        try:
            yield
        finally:
            release()

    def hold_while_sent(self, respond: Callable[[], Response]) -> Response:
        """A place for as long as the response is being sent: given back when the server closes its
        body, whether it was sent whole, cut off, never iterated (HEAD, 304) or never made."""
        release = self.take()
        try:
            response = respond()
        except BaseException:
            release()
            raise
        # Not call_on_close: werkzeug drops it for direct_passthrough bodies (downloads). The body's own
        # close is called by the server on every path, HEAD and 304 included (werkzeug closes it then).
        response.response = ClosingIterator(response.response, release)
        return response


# Memory a place may hold: an upload its chunks on their way to MongoDB (storage.CHUNK_WINDOW), a
# download its window (routes.DOWNLOAD_WINDOW). With the process' baseline (measured ~140 MiB with
# tracing) and the connections being read, they make the pod's memory limit (README "Sizing the
# gateway's memory"; tests/deploy checks every overlay against it).
UPLOAD_MIB, DOWNLOAD_MIB, BASELINE_MIB = 4, 1, 160


# Read by no service, kept here on purpose: the sizing rule is made of the numbers above and this module's
# places; tests/deploy checks every manifest's memory limit against it, so the two cannot drift apart.
def memory_needed_mib(settings: dict[str, str]) -> int:
    """The memory limit one gateway process needs for these settings (each missing one at its default)."""
    value = lambda name: int(settings.get(name) or config.default(name))  # noqa: E731
    threads = value("GUNICORN_THREADS") + value("UPLOADS_MAX") + value("EVENT_STREAMS_MAX") + value("DOWNLOADS_MAX")
    reading = (threads + SPARE_CONNECTIONS) * reading_buffer_bytes(value("HTTP_BODY_BUFFER_BYTES"))
    return (BASELINE_MIB + value("UPLOADS_MAX") * UPLOAD_MIB + value("DOWNLOADS_MAX") * DOWNLOAD_MIB
            + math.ceil(reading / 2**20))


UPLOADS = Places("uploads", "UPLOADS_MAX", metrics.UPLOADS_IN_PROGRESS, retry_after=10)
DOWNLOADS = Places("downloads", "DOWNLOADS_MAX", metrics.DOWNLOADS_IN_PROGRESS, retry_after=5)
