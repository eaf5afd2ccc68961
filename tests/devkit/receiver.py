"""A real webhook receiver on 127.0.0.1 for the tests: answers each POST with the next scripted reply
and keeps what it received (headers and body) for signature checks with the `standardwebhooks` package."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# What a dripping reply sends before the byte-at-a-time part (status line, headers, body).
_DRIP_PARTS = {"status": b"", "headers": b"HTTP/1.1 200 OK\r\n",
               "body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"}
_DRIP_REST = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 100000


class Receiver:
    """`replies` are consumed in order, then `default`: an int status, ("redirect", location), ("sleep", s),
    or ("drip", part, seconds): one byte every `seconds` in the status line, the headers or the body, until
    the client goes away or the receiver closes (it never finishes)."""

    def __init__(self, replies=(), default=200):
        self.replies, self.default = list(replies), default
        self.received: list[tuple[dict, bytes]] = []
        self.arrived = threading.Condition()
        self.closed = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner.arrived:
                    owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    reply = owner.replies.pop(0) if owner.replies else owner.default
                    owner.arrived.notify_all()
                if isinstance(reply, tuple) and reply[0] == "drip":
                    return self.drip(*reply[1:])
                if isinstance(reply, tuple) and reply[0] == "sleep":
                    time.sleep(reply[1])  # longer than the sender's timeout
                    reply = 200
                if isinstance(reply, tuple):  # a redirect
                    self.send_response(302)
                    self.send_header("Location", reply[1])
                else:
                    self.send_response(reply)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def drip(self, part, seconds):
                head = _DRIP_PARTS[part]
                rest = b"x" * 100000 if part == "body" else _DRIP_REST[len(head):]
                try:
                    self.wfile.write(head)
                    for byte in rest:
                        self.wfile.flush()
                        if owner.closed.wait(seconds):
                            return
                        self.wfile.write(bytes([byte]))
                except OSError:  # the sender gave up and closed
                    return

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks?x=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 60) -> list[tuple[dict, bytes]]:
        """At least `count` requests received (fewer if the timeout passes first)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


class Dripper:
    """A TCP server on 127.0.0.1 that, once a client connects, sends one byte every `seconds` and never
    finishes (the start of a TLS handshake record, so a TLS client keeps waiting for the rest)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client: socket.socket) -> None:
        with client:
            record = b"\x16\x03\x03\x40\x00" + b"\x02" * 0x4000  # a 16 KiB handshake record, never complete
            for byte in record:
                if self.closed.wait(self.seconds):
                    return
                try:
                    client.sendall(bytes([byte]))
                except OSError:
                    return

    def __enter__(self) -> "Dripper":
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self.listener.close()
