"""Hostile HTTP clients for tests and load runs: connections that trickle their request bodies and
readers that take their answers one byte at a time, spread over many loopback source addresses (as
many clients behind as many addresses would be), all driven from one thread each: the server must
cope, not the client. Used by tests/integration/test_slow_clients.py, the slow-clients benchmark
(loadtest/slow_clients.py) and the soak's slow bodies (loadtest/soak_hostile.py).

    crowd = SlowCrowd("127.0.0.1", 8080, {"register": lambda: json_head("POST", "/register", host)},
                      {"register": 300}).start()
    readers = SlowReaders("127.0.0.1", 8080, download_request, 100).start()
    ...
    crowd.close(); readers.close()
"""
from __future__ import annotations

import itertools
import socket
import threading
from typing import Callable, Iterator

import requests


def loopback_sources(per_address: int, first: int = 2) -> Iterator[tuple[str, int]]:
    """Source addresses 127.0.x.y (never 127.0.0.1, the victims' own), `per_address` connections each."""
    for n in itertools.count(first):
        address = f"127.0.{n // 250}.{n % 250 + 2}"
        for _ in range(per_address):
            yield address, 0


def one_address(address: str) -> Iterator[tuple[str, int]]:
    """Every connection from `address` (one client to the server, as far as per-address limits go)."""
    return itertools.repeat((address, 0))


def _connect(host: str, port: int, source: tuple[str, int], receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: the window
    sock.settimeout(10)
    sock.bind(source)
    sock.connect((host, port))
    return sock


def json_head(method: str, path: str, host: str, declared: int = 2048, auth: str = "") -> bytes:
    """A request line and headers announcing a JSON body of `declared` bytes, and its first byte."""
    extra = f"Authorization: {auth}\r\n" if auth else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n{{").encode()


def upload_head(host: str, token: str, declared: int = 10_000_000) -> bytes:
    """A multipart POST /upload announcing `declared` bytes, up to the start of the file's content."""
    preamble = ('--b\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n'
                "Content-Type: video/mp4\r\n\r\n")
    return (f"POST /upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {declared}\r\n\r\n{preamble}").encode()


def tus_patch_head(base: str, token: str, session: requests.Session | None = None, length: int = 1_000_000) -> bytes:
    """The PATCH head of a tus upload created for it (each PATCH locks its upload, so each needs its own);
    `session` creates it (from the address the PATCH will come from, say)."""
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    created = (session or requests).post(f"{base}/uploads/", headers=dict(auth, **{"Upload-Length": str(length)}),
                                         timeout=10)
    created.raise_for_status()
    path = created.headers["Location"].replace(base, "")
    host = base.split("//", 1)[1]
    return (f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


class SlowCrowd:
    """Connections that send a head and then one body byte every `interval` seconds; one the server
    closes is counted (with the status of its answer, if any) and replaced, so the pressure lasts.

    `heads` make each kind's request line, headers and body start (called per connection: a tus PATCH
    needs an upload of its own), `counts` say how many of each kind stay open; `opened` counts the
    connections opened per kind, replacements included."""

    def __init__(self, host: str, port: int, heads: dict[str, Callable[[], bytes]], counts: dict[str, int],
                 sources: Iterator[tuple[str, int]] | None = None, interval: float = 1.0):
        self.host, self.port, self.heads, self.interval = host, port, heads, interval
        self.sources = sources or loopback_sources(50)
        self.conns: list[tuple[str, socket.socket]] = []
        self.counts = counts
        self.opened: dict[str, int] = dict.fromkeys(heads, 0)
        self.closed: dict[str, int] = dict.fromkeys(heads, 0)
        self.answers: dict[str, dict[str, int]] = {name: {} for name in heads}  # first status line word
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, name: str) -> socket.socket:
        sock = _connect(self.host, self.port, next(self.sources))
        sock.sendall(self.heads[name]())
        sock.setblocking(False)
        self.opened[name] += 1
        return sock

    def start(self) -> "SlowCrowd":
        for name, n in self.counts.items():
            self.conns += [(name, self._open(name)) for _ in range(n)]
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            for i, (name, sock) in enumerate(self.conns):
                if self._still_open(name, sock):
                    continue
                sock.close()
                self.closed[name] += 1
                if not self.stopped.is_set():
                    try:
                        self.conns[i] = (name, self._open(name))
                    except OSError:  # requests' errors included (a tus head creates its upload first)
                        pass  # refused (the per-address cap, a restart): tried again next round

    def _still_open(self, name: str, sock: socket.socket) -> bool:
        """Sends the next byte; False once the server answered or closed."""
        try:
            answer = sock.recv(64)
        except BlockingIOError:
            answer = None
        except OSError:
            return False
        if answer is not None:  # an answer (408, 413, 429, 503) or the server's close
            status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
            self.answers[name][status] = self.answers[name].get(status, 0) + 1
            return False
        try:
            sock.send(b" ")
            return True
        except OSError:
            return False

    def open_count(self) -> int:
        return sum(1 for _, sock in self.conns if sock.fileno() >= 0)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        for _, sock in self.conns:
            sock.close()


class SlowReaders:
    """`n` connections that send one request (a download) and read its answer one byte every
    `interval` seconds through a tiny receive window."""

    def __init__(self, host: str, port: int, request: bytes, n: int, sources: Iterator[tuple[str, int]] | None = None,
                 interval: float = 1.0):
        self.host, self.port, self.request, self.n, self.interval = host, port, request, n, interval
        self.sources = sources or loopback_sources(50, first=200)
        self.socks: list[socket.socket] = []
        self.first_bytes: list[bytes] = []
        self.ended = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "SlowReaders":
        for _ in range(self.n):
            sock = _connect(self.host, self.port, next(self.sources), receive_buffer=2048)
            sock.sendall(self.request)
            sock.setblocking(False)
            self.socks.append(sock)
            self.first_bytes.append(b"")
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            for i, sock in enumerate(self.socks):
                if sock.fileno() < 0:
                    continue
                try:
                    data = sock.recv(1 if len(self.first_bytes[i]) >= 12 else 12)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sock.close()
                    self.ended += 1
                elif len(self.first_bytes[i]) < 12:
                    self.first_bytes[i] += data

    def statuses(self) -> dict[str, int]:
        """How many readers got which status so far ("" for no byte yet)."""
        found: dict[str, int] = {}
        for first in self.first_bytes:
            status = first.split(b" ")[1].decode() if first.count(b" ") >= 1 and len(first) >= 12 else ""
            found[status] = found.get(status, 0) + 1
        return found

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        for sock in self.socks:
            sock.close()
