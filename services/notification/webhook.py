"""One webhook POST, signed per the Standard Webhooks specification, to a checked address.

The URL is checked again here (services/common/callbacks.py), the name resolved once, and the
connection made to that checked address (the Host header and TLS server name keep the name), so
DNS cannot answer differently between check and connect. Redirects are not followed; at most
RESPONSE_LIMIT bytes of the answer are read. The whole exchange (name resolution, connect, TLS,
request, status line, headers, body) has one deadline, WEBHOOK_TIMEOUT_SECONDS: a receiver that
answers a byte at a time is cut there, however often it sends.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from services.common import config
from services.common.callbacks import CallbackRefused, Target, resolve
from services.common.webhook_secrets import key_of

RESPONSE_LIMIT = 16 * 1024  # what a receiver says back is only logged: never read more
USER_AGENT = "vid2mp3-webhooks/1"
# getaddrinfo cannot be given a timeout: it runs here and the delivery stops waiting at its deadline.
_resolver = ThreadPoolExecutor(max_workers=max(8, config.env_int("WEBHOOK_CONCURRENCY")),
                               thread_name_prefix="webhook-dns")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    refused: bool = False  # the target is forbidden: retrying cannot help
    timed_out: bool = False  # cut at the whole-exchange deadline


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` keyed with the secret's decoded bytes."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key_of(secret), signed, hashlib.sha256).digest()).decode()


def event_body(event_type: str, data: dict) -> bytes:
    return json.dumps({"type": event_type, "data": data}, separators=(",", ":"), sort_keys=True).encode()


class DeadlinePassed(Exception):
    """The whole exchange did not finish within its deadline."""


class _Deadline:
    """Shuts the connection's socket down when the deadline passes, which ends any read or write
    blocked on it (a per-read timeout would restart with every dripped byte)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._sock = None
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


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, deadline: _Deadline):
        super().__init__(target.host, target.port, timeout=deadline.remaining())
        self.address = target.address
        self.deadline = deadline

    def _open_socket(self) -> socket.socket:
        sock = socket.create_connection((self.address, self.port), self.deadline.remaining())
        self.deadline.watch(sock)
        return sock

    def connect(self):
        self.sock = self._open_socket()


class _PinnedHTTPS(_PinnedHTTP):
    def connect(self):
        sock = self._open_socket()
        context = ssl.create_default_context()
        # certificate checked against the name; the handshake only once the TLS socket is watched
        self.sock = context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        self.deadline.watch(self.sock)
        self.sock.do_handshake()


def _resolve(url: str, deadline: _Deadline) -> Target:
    """callbacks.resolve, given no longer than the deadline leaves (CallbackRefused passes through)."""
    future = _resolver.submit(resolve, url)
    try:
        return future.result(timeout=deadline.remaining())
    except FutureTimeout:
        deadline.passed = True
        raise DeadlinePassed() from None


def deliver(url: str, secret: str, webhook_id: str, body: bytes) -> Outcome:
    """POST the event once; a 2xx is delivered, anything else (3xx included) is a failed attempt."""
    deadline = _Deadline(config.env_float("WEBHOOK_TIMEOUT_SECONDS"))
    try:
        return _exchange(url, secret, webhook_id, body, deadline)
    except CallbackRefused as exc:
        return Outcome(False, error=str(exc), refused=True)
    except (OSError, http.client.HTTPException, DeadlinePassed) as exc:  # timeouts, refusals, TLS, garbage
        if deadline.passed or isinstance(exc, TimeoutError):
            return Outcome(False, error=f"timed out: no whole answer within {deadline.seconds:g} s", timed_out=True)
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:300] or "connection failed")
    finally:
        deadline.release()


def _exchange(url: str, secret: str, webhook_id: str, body: bytes, deadline: _Deadline) -> Outcome:
    target = _resolve(url, deadline)
    timestamp = int(time.time())  # of this attempt: receivers reject old timestamps as replays
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": webhook_id,
               "webhook-timestamp": str(timestamp), "webhook-signature": signature(secret, webhook_id, timestamp, body)}
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, deadline)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(RESPONSE_LIMIT)
        code = response.status
        if deadline.passed:  # a cut socket reads as the end of the body: not an answer in time
            raise DeadlinePassed()
    finally:
        deadline.release()  # before the close: the timer must not touch a descriptor that is reused
        connection.close()
    if 200 <= code < 300:
        return Outcome(True, code)
    return Outcome(False, code, "redirect not followed" if 300 <= code < 400 else f"HTTP {code}")
