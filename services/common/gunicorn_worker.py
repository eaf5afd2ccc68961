"""gunicorn's threaded worker with strict client timeouts, so slow or silent clients cannot keep threads.

gthread already leaves a connection that sends nothing to its poller (and closes it after the
keepalive time). Once a client has sent a first byte, though, a thread reads its request with
blocking, never-ending reads. Here every read of a client socket gives up after
HTTP_IDLE_TIMEOUT_SECONDS without a byte, and the request line and headers must be complete within
HTTP_HEADER_TIMEOUT_SECONDS of the thread taking the connection (a client trickling header bytes
would otherwise keep its thread forever). Bodies may be slow, but never idle: the application bounds
how many of them are in progress (UPLOADS_MAX), and the thread pool is sized so short requests
always find a thread (see gunicorn_conf).
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
import time

from gunicorn.workers.gthread import ThreadWorker

from services.common.config import env_float
from services.common.metrics import CLIENT_TIMEOUTS as TIMED_OUT

log = logging.getLogger("gunicorn.error")

_request = threading.local()  # per worker thread: when the headers being read must be complete


class _TimedSocket(socket.socket):
    """A client socket whose blocking mode still gives up after the idle timeout."""

    idle_timeout = 30.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.idle_timeout)
        else:
            super().setblocking(False)

    def recv(self, size: int, *flags) -> bytes:
        why = self._bound_wait()
        try:
            return super().recv(size, *flags)
        except TimeoutError:
            raise _gone(why) from None

    def recv_into(self, buffer, *args) -> int:
        why = self._bound_wait()
        try:
            return super().recv_into(buffer, *args)
        except TimeoutError:
            raise _gone(why) from None

    def _bound_wait(self) -> str:
        """Set the timeout of the next read; returns what its expiry would mean."""
        if self.gettimeout() in (None, 0.0):
            return "idle too long"  # the poller's non-blocking reads never wait
        deadline = getattr(_request, "header_deadline", None)
        left = self.idle_timeout if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise _gone("request headers not complete in time")
        self.settimeout(min(self.idle_timeout, left))
        return "idle too long" if left >= self.idle_timeout else "request headers not complete in time"


def _gone(why: str) -> OSError:
    """The error a timed-out read raises: ENOTCONN, which gunicorn takes for a client that left (it
    closes the connection without a traceback), and which the application sees as a broken body."""
    log.info("closing a client connection: %s", why)
    TIMED_OUT.labels(why.split()[0]).inc()
    return OSError(errno.ENOTCONN, f"client connection closed: {why}")


class TimedThreadWorker(ThreadWorker):
    """gthread with _TimedSocket client connections and a deadline for each request's headers."""

    def init_process(self):
        _TimedSocket.idle_timeout = env_float("HTTP_IDLE_TIMEOUT_SECONDS")
        self.header_timeout = env_float("HTTP_HEADER_TIMEOUT_SECONDS")
        super().init_process()

    def accept(self, listener):
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        timed = _TimedSocket(client.family, client.type, client.proto, fileno=client.detach())
        self.nr_conns += 1
        timed.setblocking(True)
        from gunicorn.workers.gthread import TConn

        self.enqueue_req(TConn(self.cfg, timed, address, listener.getsockname()))

    def handle(self, conn):
        _request.header_deadline = time.monotonic() + self.header_timeout
        try:
            return super().handle(conn)
        finally:
            _request.header_deadline = None

    def handle_request(self, req, conn):
        _request.header_deadline = None  # the headers are in: the body has only the idle timeout
        return super().handle_request(req, conn)

