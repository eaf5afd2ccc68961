"""HTTP/1.1 connections made to an address checked beforehand (services/common/callbacks.py), with one
deadline for the whole exchange: what webhooks (services/notification/webhook.py) and URL imports
(services/converter/fetch.py) use to call users' URLs.

The connection goes to the checked address, never to the name again (the Host header and TLS server
name keep the name), so a second DNS answer cannot swap in a private address (DNS rebinding).
"""
from __future__ import annotations

import http.client
import socket
import threading
import time

from . import tls
from .callbacks import Target


class DeadlinePassed(Exception):
    """The whole exchange did not finish within its deadline."""


class Deadline:
    """Shuts the connection's socket down when the deadline passes, which ends any read or write
    blocked on it (a per-read timeout would restart with every dripped byte)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            self.passed = True
            raise DeadlinePassed()
        return left

    def watch(self, sock: socket.socket) -> None:
        """Cut `sock` at the deadline (counted from the start of the attempt, DNS included)."""
        with self._lock:
            self._sock = sock
            if self._timer is None:
                self._timer = threading.Timer(max(0.0, self.at - time.monotonic()), self._cut)
                self._timer.daemon = True
                self._timer.start()

    def _cut(self) -> None:
        with self._lock:  # never after release(): the descriptor may belong to another socket by then
            self.passed = True
            if self._sock is not None:
                try:
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)  # the raw socket, under TLS too
                except OSError:
                    pass

    def release(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._sock = None


class PinnedHTTP(http.client.HTTPConnection):
    """With `stall_seconds`, every read or write after the connect waits at most that long (a source that
    stops sending is given up early); the deadline still bounds the whole exchange."""

    def __init__(self, target: Target, deadline: Deadline, stall_seconds: float | None = None):
        super().__init__(target.host, target.port, timeout=deadline.remaining())
        self.address = target.address
        self.deadline = deadline
        self.stall_seconds = stall_seconds

    def _open_socket(self) -> socket.socket:
        sock = socket.create_connection((self.address, self.port), self.deadline.remaining())
        self.deadline.watch(sock)
        if self.stall_seconds is not None:
            sock.settimeout(self.stall_seconds)
        return sock

    def connect(self):
        self.sock = self._open_socket()


class PinnedHTTPS(PinnedHTTP):
    def connect(self):
        sock = self._open_socket()
        # certificate checked against the name; the handshake only once the TLS socket is watched
        self.sock = tls.client_context().wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        self.deadline.watch(self.sock)
        self.sock.do_handshake()
