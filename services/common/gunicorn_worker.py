"""gunicorn's threaded worker, hardened against slow and hostile clients on every route.

gthread gives each request a thread as soon as its first byte arrives, and the thread then waits on
the client: 300 clients trickling a `POST /register` body take every thread, and `/healthz` with
them. Here the worker's event loop (one thread, non-blocking sockets) reads each request's head and
small body (up to HTTP_BODY_BUFFER_BYTES) before a thread sees it, so a thread only ever works on a
complete request. The loop bounds that reading: the head within HTTP_HEADER_TIMEOUT_SECONDS, the
small body within HTTP_BODY_TIMEOUT_SECONDS; then 408 and close. A larger body is refused (413)
unless its route streams bodies (views marked with web.streams_body: uploads, tus PATCH), which get a
thread of their own place (UPLOADS_MAX) at once. In a thread, every read and write of a client
(streamed bodies, downloads, event streams) waits at most HTTP_IDLE_TIMEOUT_SECONDS and, once the
client has cost HTTP_TRANSFER_GRACE_SECONDS of waiting, must move at least
HTTP_MIN_TRANSFER_RATE_BYTES per second of waiting. A client address holds at most
HTTP_MAX_CONNECTIONS_PER_ADDRESS connections (direct clients only: behind TRUSTED_PROXY_HOPS proxies
every peer is a proxy, and the edge caps its clients). Every close is counted in
vid2mp3_http_client_timeouts_total{reason} or vid2mp3_http_refused_total{reason} and logged.
"""
from __future__ import annotations

import errno
import logging
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import unquote

import selectors
from gunicorn import glogging, util as gunicorn_util
from gunicorn.workers.gthread import TConn, ThreadWorker

from services.common import problems
from services.common import request_framing as framing
from services.common.config import env_float, env_int
from services.common.metrics import CLIENT_TIMEOUTS, HTTP_READING, HTTP_REFUSED

log = logging.getLogger("gunicorn.error")

# A connection being read holds at most HEAD_MAX_BYTES + HTTP_BODY_BUFFER_BYTES + READ_SIZE (README
# "Sizing the gateway's memory").
READ_SIZE = 16 * 1024
HEAD_MAX_BYTES = 32 * 1024  # a larger head is handed to gunicorn's parser, which refuses it
SPARE_CONNECTIONS = 1024  # connections a process holds beyond its threads (requests being read, kept-alive)


def reading_buffer_bytes(body_buffer: int) -> int:
    """The most a connection being read holds: its head, its small body, one read beyond."""
    return HEAD_MAX_BYTES + body_buffer + READ_SIZE
_transfer = threading.local()  # per worker thread: how long the current request waited on its client


@dataclass
class Limits:
    header_timeout: float
    body_timeout: float
    body_buffer: int
    idle_timeout: float
    min_rate: float
    grace: float
    per_address: int  # 0: no cap

    @classmethod
    def from_env(cls) -> "Limits":
        behind_proxies = env_int("TRUSTED_PROXY_HOPS") > 0
        return cls(env_float("HTTP_HEADER_TIMEOUT_SECONDS"), env_float("HTTP_BODY_TIMEOUT_SECONDS"),
                   env_int("HTTP_BODY_BUFFER_BYTES"), env_float("HTTP_IDLE_TIMEOUT_SECONDS"),
                   env_float("HTTP_MIN_TRANSFER_RATE_BYTES"), env_float("HTTP_TRANSFER_GRACE_SECONDS"),
                   0 if behind_proxies else env_int("HTTP_MAX_CONNECTIONS_PER_ADDRESS"))


class _ClientSocket(socket.socket):
    """A client socket whose blocking reads and writes are bounded by silence and by rate."""

    limits: Limits

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.limits.idle_timeout)
        else:
            super().setblocking(False)

    def recv(self, size: int, *flags) -> bytes:
        return self._timed(super().recv, size, *flags)

    def recv_into(self, buffer, *args) -> int:
        return self._timed(super().recv_into, buffer, *args)

    def sendall(self, data, *flags) -> None:
        view = memoryview(data).cast("B")
        while view:
            sent = self._timed(super().send, view, *flags)
            view = view[sent:]

    def _timed(self, operation, *args):
        """One read or write; a blocking one counts its wait against the client's rate."""
        if self.gettimeout() == 0.0:
            return operation(*args)  # the event loop's non-blocking reads
        started = time.monotonic()
        try:
            result = operation(*args)
            _charge(time.monotonic() - started, result if isinstance(result, int) else len(result), self.limits)
        except (TimeoutError, _TooSlow) as exc:
            # cut off: closed with RST, so what the kernel still holds for this client is dropped at once
            self.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raise _closing("slow" if isinstance(exc, _TooSlow) else "idle") from None
        return result


class _TooSlow(Exception):
    """The client moves fewer bytes than HTTP_MIN_TRANSFER_RATE_BYTES per second of waiting."""


def _charge(waited: float, moved: int, limits: Limits) -> None:
    """Add one operation to this thread's request; too slow a client is cut off."""
    _transfer.waited = getattr(_transfer, "waited", 0.0) + waited
    _transfer.moved = getattr(_transfer, "moved", 0) + moved
    if _transfer.waited > limits.grace and _transfer.moved < limits.min_rate * _transfer.waited:
        raise _TooSlow()


def _closing(reason: str) -> OSError:
    """The error a cut-off client raises: ENOTCONN, which gunicorn takes for a client that left (it
    closes the connection without a traceback), and which the application sees as a broken body."""
    log.info("closing a client connection", extra={"reason": reason})
    CLIENT_TIMEOUTS.labels(reason).inc()
    return OSError(errno.ENOTCONN, f"client connection closed: {reason}")


def canned(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete response written by the event loop itself, in the API's error shape (problem details)."""
    return problems.raw_response(status, code, message, headers)


# gunicorn's parser answers what it cannot parse (400, 414, 431, 417, 501) with an HTML page of its own
# (gunicorn.util.write_error, called by Worker.handle_error); here it is the API's problem details too.
_GUNICORN_CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
                   431: "request_header_fields_too_large", 500: "internal_error", 501: "not_implemented"}


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    code = _GUNICORN_CODES.get(status_int, "http_error")
    gunicorn_util.write_nonblock(sock, canned(status_int, code, mesg or reason))


gunicorn_util.write_error = write_problem


@dataclass
class _Reading:
    """A request being read by the event loop."""

    deadline: float
    buffer: bytearray = field(default_factory=bytearray)
    head: framing.Head | None = None
    registered: bool = False


class GuardedConn(TConn):
    """A connection that knows its client address and gives its place back exactly once."""

    def __init__(self, cfg, sock, client, server, on_close):
        super().__init__(cfg, sock, client, server)
        self.host = client[0] if isinstance(client, tuple) else "local"
        self.reading: _Reading | None = None
        self.ready = b""  # a complete request, read ahead, for the thread's parser
        self._on_close = on_close

    def close(self, graceful=False):
        on_close, self._on_close = self._on_close, None
        try:
            if graceful:
                _close_without_lingering(self.sock)
            else:
                super().close()
        finally:
            if on_close:
                on_close(self)


def _close_without_lingering(sock: socket.socket) -> None:
    """gunicorn's graceful close waits up to 2 s on the event loop's thread for the peer to close:
    a hundred clients that never do stall the loop for minutes. Here: FIN, then drain only what
    already arrived (unread bytes there would make the kernel answer with RST), then close."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.setblocking(False)
        for _ in range(16):
            if not socket.socket.recv(sock, 65536):
                break
    except OSError:
        pass  # nothing more to read (EAGAIN), or the peer is gone
    finally:
        sock.close()


class NoAccessLogger(glogging.Logger):
    """gunicorn's logger without its access log (gunicorn_conf.accesslog is None: every request is a
    metric and a span already). With a logconfig_dict, gunicorn formats each request's access-log
    fields even for a logger without handlers: ~5 % of a status poll's CPU (issue 24)."""

    def access(self, resp, req, environ, request_time) -> None:
        return None


class GuardedThreadWorker(ThreadWorker):
    """gthread whose event loop reads every request before a thread takes it (see the module)."""

    def init_process(self):
        self.limits = _ClientSocket.limits = Limits.from_env()
        self.reading: dict[GuardedConn, _Reading] = {}
        self.per_address: Counter[str] = Counter()
        super().init_process()

    # ---- connections in and out (all on the event loop's thread)

    def accept(self, listener):
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        sock = _ClientSocket(client.family, client.type, client.proto, fileno=client.detach())
        conn = GuardedConn(self.cfg, sock, address, listener.getsockname(), self._forget)
        if self.limits.per_address and self.per_address[conn.host] >= self.limits.per_address:
            self._refuse_socket(sock, "per_address", canned(429, "too_many_connections",
                                f"at most {self.limits.per_address} connections per client address",
                                {"Retry-After": "5"}))
            return
        self.per_address[conn.host] += 1
        self.nr_conns += 1
        self._read_request(conn)

    def _forget(self, conn: GuardedConn) -> None:
        self.per_address[conn.host] -= 1
        if self.per_address[conn.host] <= 0:
            del self.per_address[conn.host]

    def enqueue_req(self, conn):
        """Every path to a thread (new, kept-alive, pipelined) passes here: only complete requests go on."""
        if conn.ready:
            return super().enqueue_req(conn)
        self._read_request(conn)

    def _read_request(self, conn: GuardedConn) -> None:
        ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.reading = _Reading(deadline=time.monotonic() + self.limits.header_timeout, buffer=bytearray(ahead))
        conn.sock.setblocking(False)
        self.reading[conn] = conn.reading
        if not self._advance(conn):
            conn.reading.registered = True
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: GuardedConn, _sock) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)  # the client left before finishing its request
            return
        assert conn.reading is not None  # registered with the poller only while its request is read
        conn.reading.buffer += data
        self._advance(conn)

    def _advance(self, conn: GuardedConn) -> bool:
        """Take the request as far as its bytes allow; True once it left the event loop."""
        reading = conn.reading
        assert reading is not None  # called only while the request is read
        try:
            if reading.head is None and not self._read_head(conn, reading):
                return False
            if reading.head is None:  # _read_head answered or dispatched it
                return True
            end = framing.body_end(reading.buffer, reading.head)
        except framing.Malformed:
            return self._dispatch(conn)  # gunicorn's parser answers it with a 400
        if (len(reading.buffer) if end is None else end) - reading.head.end > self.limits.body_buffer:
            return self._too_large(conn)  # a chunked body, which announced no length
        return self._dispatch(conn) if end is not None else False

    def _read_head(self, conn: GuardedConn, reading: _Reading) -> bool:
        """Parse the head once it is complete; False while it is not. A head that settles the request
        (no body, a streamed body, too large a body) dispatches or answers it at once."""
        head = framing.parse_head(reading.buffer)
        if head is None:
            if len(reading.buffer) > HEAD_MAX_BYTES:
                self._dispatch(conn)  # gunicorn answers 431/400
                return True
            return False
        if not head.has_body or self._streams_body(head):
            self._dispatch(conn)
            return True
        if head.length is not None and head.length > self.limits.body_buffer:
            self._too_large(conn)
            return True
        reading.head = head
        reading.deadline = time.monotonic() + self.limits.body_timeout
        if head.expects_continue:
            self._send_quietly(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _streams_body(self, head: framing.Head) -> bool:
        """Whether the application marked the view of this request as one that streams its body. Never an
        OPTIONS (a CORS preflight, tus discovery): Flask answers it for the streaming view's route without
        the view, which alone holds an upload place while reading, so its body must be small."""
        if head.method == "OPTIONS":
            return False
        app = self.wsgi
        try:
            endpoint, _ = app.url_map.bind("localhost").match(unquote(head.path), head.method)
        except Exception:  # not found, method not allowed, redirect, not a Flask app
            return False
        return bool(getattr(app.view_functions.get(endpoint), "streams_body", False))

    def _dispatch(self, conn: GuardedConn) -> bool:
        self._stop_reading(conn)
        assert conn.reading is not None  # dispatched once, while its request is read
        conn.ready = bytes(conn.reading.buffer)  # never empty: a request has at least its request line
        conn.reading = None
        conn.data_ready = True  # gthread's own wait for a first byte is not needed
        super().enqueue_req(conn)
        return True

    def _stop_reading(self, conn: GuardedConn) -> None:
        reading = self.reading.pop(conn, None)
        if reading is not None and reading.registered:
            self.poller.unregister(conn.sock)

    def _too_large(self, conn: GuardedConn) -> bool:
        limit = self.limits.body_buffer
        self._answer_and_close(conn, "body_too_large", canned(413, "payload_too_large",
                               f"request body larger than {limit} bytes (only uploads may be larger)"))
        return True

    # ---- deadlines (the loop runs this about once a second)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for conn, reading in list(self.reading.items()):
            if reading.deadline <= now:
                reason = "idle" if not reading.buffer else "headers" if reading.head is None else "body"
                CLIENT_TIMEOUTS.labels(reason).inc()
                log.info("closing a client connection", extra={"reason": reason, "client": conn.host})
                self._send_quietly(conn.sock,
                                   canned(408, "request_timeout", f"request not received in time ({reason})"))
                self._close(conn)
        HTTP_READING.set(len(self.reading))

    # ---- answers the loop writes itself

    def _answer_and_close(self, conn: GuardedConn, reason: str, response: bytes) -> None:
        HTTP_REFUSED.labels(reason).inc()
        log.info("refusing a request", extra={"reason": reason, "client": conn.host})
        self._send_quietly(conn.sock, response)
        self._close(conn)

    def _refuse_socket(self, sock: socket.socket, reason: str, response: bytes) -> None:
        HTTP_REFUSED.labels(reason).inc()
        sock.setblocking(False)
        self._send_quietly(sock, response)
        sock.close()

    def _close(self, conn: GuardedConn) -> None:
        self._stop_reading(conn)
        self.nr_conns -= 1
        conn.close()

    @staticmethod
    def _send_quietly(sock: socket.socket, data: bytes) -> None:
        try:
            socket.socket.send(sock, data)  # non-blocking: what does not fit is dropped with the client
        except OSError:
            pass

    # ---- the thread's side

    def handle(self, conn):
        ready, conn.ready = conn.ready, b""
        conn.init()
        if ready:
            conn.parser.unreader.unread(ready)
        return super().handle(conn)

    def handle_request(self, req, conn):
        _transfer.waited, _transfer.moved = 0.0, 0
        return super().handle_request(req, conn)
