"""A real webhook receiver on 127.0.0.1 for the tests: answers each POST with the next scripted reply
and keeps what it received (headers and body) for signature checks with the `standardwebhooks` package."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """`replies` are consumed in order, then `default`: an int status, ("redirect", location) or ("sleep", s)."""

    def __init__(self, replies=(), default=200):
        self.replies, self.default = list(replies), default
        self.received: list[tuple[dict, bytes]] = []
        self.arrived = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner.arrived:
                    owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    reply = owner.replies.pop(0) if owner.replies else owner.default
                    owner.arrived.notify_all()
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
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 60) -> list[tuple[dict, bytes]]:
        """At least `count` requests received (fewer if the timeout passes first)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)
