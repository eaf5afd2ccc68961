"""A local HTTP server whose paths answer the ways a URL import's source can: a file, a redirect, an
error, a trickle, a lie about its length. Every request is recorded (path, Host), so a test can prove a
request never reached it."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

Route = Callable[[BaseHTTPRequestHandler], None]


class SourceServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (the base class's name)
                outer.requests.append(self.path)
                route = outer.routes.get(self.path.split("?")[0])
                if route is None:
                    send(self, 404, b"not here", "text/plain")
                    return
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the fetcher hung up: what a cut import does

            def log_message(self, format, *args):  # noqa: A002
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://{host}:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.requests if seen.split("?")[0] == path)


@contextmanager
def source_server(host: str = "127.0.0.1") -> Iterator[SourceServer]:
    server = SourceServer(host)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "video/mp4",
         headers: dict | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def file_route(body: bytes, content_type: str = "video/mp4") -> Route:
    return lambda handler: send(handler, 200, body, content_type)


def redirect_route(location: str, status: int = 302) -> Route:
    return lambda handler: send(handler, status, b"", "text/plain", {"Location": location})


def status_route(status: int, body: bytes = b"no", content_type: str = "text/plain") -> Route:
    return lambda handler: send(handler, status, body, content_type)


def failing_first(times: int, then: Route, status: int = 503) -> Route:
    """`status` for the first `times` requests, then `then`."""
    count = {"n": 0}

    def route(handler):
        count["n"] += 1
        if count["n"] <= times:
            send(handler, status, b"try later", "text/plain")
        else:
            then(handler)
    return route


def trickle_route(head: bytes, declared: int, every: float = 0.2, step: int = 64) -> Route:
    """Declares `declared` bytes, sends `head`, then `step` zero bytes every `every` seconds, forever."""
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        handler.wfile.write(head)
        handler.wfile.flush()
        for _ in range(int(declared / step)):
            time.sleep(every)
            handler.wfile.write(b"\0" * step)
            handler.wfile.flush()
    return route


def chunked_route(block: bytes, count: int) -> Route:
    """A chunked answer without a length: `block` `count` times."""
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for _ in range(count):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
        handler.wfile.write(b"0\r\n\r\n")
    return route


def lying_length_route(declared: int) -> Route:
    """Declares `declared` bytes and sends a few: a fetch must refuse on the header alone."""
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        handler.wfile.write(b"\0\0\0\x18ftypmp42")
    return route
