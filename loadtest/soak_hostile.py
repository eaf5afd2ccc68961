"""The hostile clients of the soak (loadtest/soak.py), all at once beside the normal users:

* slow request bodies on POST /register, POST /login and tus PATCH (devkit's SlowCrowd, reopened
  when the server closes them or dies);
* a hostile tenant whose jobs name a dripping webhook receiver: a local server that answers one
  byte every few seconds;
* bursts of logins with wrong passwords;
* requests with made-up HTTP methods and paths.

Each records what it got back in a shared Timeline (for the report's error plot). Each kind connects
from a loopback address of its own (ADDRESSES), as different clients would: the normal users are
127.0.0.1, and per-address limits of the gateway and auth see them apart.
"""
from __future__ import annotations

import base64
import http.client
import random
import socket
import socketserver
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter

from devkit.hostile_http import SlowCrowd, json_head, one_address, tus_patch_head
from devkit.media import unique_mp4

ADDRESSES = {"slow_bodies": "127.0.0.2", "login_flood": "127.0.0.3", "junk": "127.0.0.4", "tenant": "127.0.0.5"}

DRIP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class Timeline:
    """(time, source, outcome) of every hostile request: outcome is a status code, or 0 for no answer."""

    def __init__(self):
        self.events: list[tuple[float, str, int]] = []
        self.lock = threading.Lock()

    def add(self, source: str, outcome: int) -> None:
        with self.lock:
            self.events.append((time.time(), source, outcome))

    def counts(self, source: str) -> dict[int, int]:
        found: dict[int, int] = {}
        for _, name, outcome in list(self.events):
            if name == source:
                found[outcome] = found.get(outcome, 0) + 1
        return found


class _SourceAdapter(HTTPAdapter):
    def __init__(self, address: str):
        self.address = address
        super().__init__(pool_maxsize=32)  # the login flood's threads share one session

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs, source_address=(self.address, 0))


def session_from(address: str) -> requests.Session:
    """A requests session whose connections come from `address`."""
    session = requests.Session()
    session.mount("http://", _SourceAdapter(address))
    return session


# ------------------------------------------------------------------ slow bodies


class SlowBodies:
    """Slow bodies on /register, /login and tus PATCH from one address, their connection counts kept up."""

    def __init__(self, base: str, token: str, victim: str, counts: dict[str, int], interval: float = 1.0):
        host, port = base.split("//", 1)[1].split(":")
        wrong = base64.b64encode(f"{victim}:wrong-password-123".encode()).decode()
        heads = {"register": lambda: json_head("POST", "/register", host, 4096),
                 "login": lambda: json_head("POST", "/login", host, 4096, auth=f"Basic {wrong}"),
                 "tus_patch": lambda: tus_patch_head(base, token, session_from(ADDRESSES["slow_bodies"]))}
        counts = {name: n for name, n in counts.items() if n}
        self.crowd = SlowCrowd(host, int(port), {name: heads[name] for name in counts}, counts,
                               sources=one_address(ADDRESSES["slow_bodies"]), interval=interval)

    def start(self) -> "SlowBodies":
        self.crowd.start()
        return self

    def stop(self) -> dict[str, int]:
        """Connections opened per route (first ones and replacements of closed ones)."""
        self.crowd.close()
        return self.crowd.opened


# ------------------------------------------------------------------ dripping webhook receiver


class DripReceiver:
    """A webhook receiver on 127.0.0.1 that reads the request, then answers one byte every `drip`
    seconds; keeps the webhook-id of every request it got."""

    def __init__(self, drip: float = 3.0):
        self.drip = drip
        self.ids: list[tuple[float, str]] = []
        self.stopped = threading.Event()
        self.connections: set[socket.socket] = set()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                owner.connections.add(self.request)
                try:
                    owner._serve(self.request)
                except OSError:
                    pass  # the sender gave up: what a dripping receiver expects
                finally:
                    owner.connections.discard(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/drip"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _serve(self, conn: socket.socket) -> None:
        head, body = _read_request(conn)
        hook_id = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                        if line.lower().startswith("webhook-id:")), "")
        self.ids.append((time.time(), hook_id))
        for byte in DRIP_RESPONSE:
            if self.stopped.wait(self.drip):
                return
            conn.sendall(bytes([byte]))

    def __enter__(self) -> "DripReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()
        for conn in list(self.connections):
            conn.close()


def _read_request(conn: socket.socket) -> tuple[str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode(errors="replace")
    length = next((int(line.split(":", 1)[1]) for line in text.split("\r\n")
                   if line.lower().startswith("content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        body += chunk
    return text, body


class HostileTenant:
    """Uploads a job every `every` seconds whose callback_url is a dripping receiver."""

    def __init__(self, base: str, token: str, callback_url: str, video: bytes, timeline: Timeline, every: float = 20):
        self.base, self.token, self.callback_url, self.video = base, token, callback_url, video
        self.timeline, self.every = timeline, every
        self.accepted: list[tuple[str, float]] = []  # (job id, time of the 202)
        self.session = session_from(ADDRESSES["tenant"])
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                answer = self.session.post(f"{self.base}/upload", headers={"Authorization": f"Bearer {self.token}"},
                                       files={"file": ("drip.mp4", unique_mp4(self.video))},
                                       data={"callback_url": self.callback_url}, timeout=30)
                self.timeline.add("hostile_upload", answer.status_code)
                if answer.status_code == 202:
                    self.accepted.append((answer.json()["job_id"], time.time()))
            except requests.RequestException:
                self.timeline.add("hostile_upload", 0)
            self.stopped.wait(self.every)


# ------------------------------------------------------------------ login floods, made-up methods


class LoginFlood:
    """Every `period` seconds, `burst` parallel logins with wrong passwords for `emails`."""

    def __init__(self, base: str, emails: list[str], timeline: Timeline, burst: int = 16, period: float = 15):
        self.base, self.emails, self.timeline, self.burst, self.period = base, emails, timeline, burst, period
        self.session = session_from(ADDRESSES["login_flood"])
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _one(self, email: str) -> None:
        try:
            answer = self.session.post(f"{self.base}/login", auth=(email, "not-the-password-9"), timeout=30)
            self.timeline.add("login_flood", answer.status_code)
        except requests.RequestException:
            self.timeline.add("login_flood", 0)

    def _run(self) -> None:
        with ThreadPoolExecutor(self.burst) as pool:
            while not self.stopped.wait(self.period):
                list(pool.map(self._one, [random.choice(self.emails) for _ in range(self.burst)]))


class JunkRequests:
    """Made-up HTTP methods on made-up and real paths, `rate` per second."""

    PATHS = ("/", "/healthz", "/jobs", "/upload", "/login", "/no/such/path", "/jobs/x/y/z", "/%7e%00", "/uploads/")

    def __init__(self, base: str, timeline: Timeline, rate: float = 4):
        self.host, self.port = base.split("//", 1)[1].split(":")
        self.timeline, self.rate = timeline, rate
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _one(self) -> None:
        method = "".join(random.choices(string.ascii_uppercase, k=random.randint(3, 12)))
        path = random.choice(self.PATHS) + ("" if random.random() < 0.5 else f"/{random.randrange(10**9)}")
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=10,
                                                source_address=(ADDRESSES["junk"], 0))
        try:
            connection.request(method, path)
            self.timeline.add("junk", connection.getresponse().status)
        except (OSError, http.client.HTTPException):
            self.timeline.add("junk", 0)
        finally:
            connection.close()

    def _run(self) -> None:
        while not self.stopped.wait(1 / self.rate):
            self._one()


def start_all(*workers) -> None:
    for worker in workers:
        worker.thread.start()


def stop_all(*workers) -> None:
    for worker in workers:
        worker.stopped.set()
    for worker in workers:
        worker.thread.join(120)  # the chaos thread may be in the middle of a restart
