"""Slow and hostile clients block nobody, on every route: a private gateway on the test stack (its own
short timeouts) is attacked from many loopback addresses by trickled bodies on register, login, tus
PATCH, cancel and uploads, and by downloads read one byte a second, while another user's /healthz
and GET /jobs/<id> are timed and a normal upload must go through. Each limit is also tried alone:
silent and never-finishing requests, too large bodies, the connections per address, the upload
places. (loadtest/slow_clients.py measures the same on a quiet stack.)"""
from __future__ import annotations

import base64
import os
import socket
import statistics
import threading
import time

import pytest
import requests

from devkit.client import Client
from devkit.media import make_media, unique_mp4
from devkit import hostile_http as hostile
from devkit.metrics import metric_value
from devkit.stack import start_gateway

TIMEOUT = 5  # the private gateway's head and small-body deadlines, seconds
IDLE = 3
GRACE = 20
UPLOADS_MAX = 201
PER_ADDRESS = 64




@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    env = dict(os.environ, MONGO_URI=os.environ["MONGO_URI"], AUTH_URL=stack["auth"])
    log = tmp_path_factory.mktemp("slow") / "gateway.log"
    proc, base, metrics = start_gateway(env, [], {
        "UPLOADS_MAX": str(UPLOADS_MAX), "DOWNLOADS_MAX": "128", "HTTP_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "HTTP_BODY_TIMEOUT_SECONDS": str(TIMEOUT), "HTTP_IDLE_TIMEOUT_SECONDS": str(IDLE),
        "HTTP_TRANSFER_GRACE_SECONDS": str(GRACE), "HTTP_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS)}, log)
    yield {"base": base, "port": int(base.rsplit(":", 1)[1]), "metrics": metrics, "log": log}
    proc.terminate()
    proc.wait(30)


def _admin_token() -> str:
    """An admin's token (exempt from quotas: hundreds of uploads of one user are the server's problem
    here, not the quota's), issued as auth issues one, with the stack's key."""
    from services.auth import tokens

    return tokens.issue({"id": "slow-clients-admin", "email": "admin@example.com", "is_admin": True})


def _series(metrics_url: str, name: str, **labels) -> float:
    return metric_value(metrics_url, name, **labels) or 0.0  # a series not yet written is 0


def _wait(check, what, timeout: float = 60):
    """Wait until check() holds; `what` (a text, or a function making one) says what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _probe(base: str, job_id: str, auth: dict, rounds: int = 100) -> tuple[float, list[int]]:
    """p99 latency (s) of another user's /healthz and GET /jobs/<id>, and every status they got."""
    latencies, statuses = [], []
    for _ in range(rounds):
        for url, headers in ((f"{base}/healthz", None), (f"{base}/jobs/{job_id}", auth)):
            started = time.perf_counter()
            statuses.append(requests.get(url, headers=headers, timeout=20).status_code)
            latencies.append(time.perf_counter() - started)
    return statistics.quantiles(latencies, n=100)[98], statuses


def test_every_route_under_slow_clients_blocks_nobody(gateway, stack, ten_minute_video, tmp_path):
    """300 slow /register, 100 slow /login, 100 slow tus PATCH and 50 slow cancel bodies, 100 downloads
    read a byte a second: another user's requests stay fast and a normal upload is accepted; then the
    slow ones are closed, counted and logged."""
    base, port, host = gateway["base"], gateway["port"], "127.0.0.1"
    victim = Client(stack["gateway"]).signed_up()
    job_id = victim.upload(make_media(tmp_path / "mine.mp4", seconds=1)).json()["job_id"]
    owner = Client(stack["gateway"]).signed_up()
    with open(ten_minute_video, "rb") as f:
        long_job = requests.post(f"{stack['gateway']}/upload", headers=owner.auth,
                                 files={"file": ("long.mp4", unique_mp4(f.read()))}, timeout=60).json()["job_id"]
    mp3_id = owner.wait_job(long_job, timeout=120)["mp3_id"]
    admin = _admin_token()
    tus_heads = [hostile.tus_patch_head(base, admin) for _ in range(100)]  # made before the attack
    basic = base64.b64encode(f"{victim.email}:wrong-password".encode()).decode()
    heads = {
        "register": lambda: hostile.json_head("POST", "/register", host),
        "login": lambda: hostile.json_head("POST", "/login", host, auth=f"Basic {basic}"),
        "tus_patch": lambda: tus_heads.pop() if tus_heads else hostile.tus_patch_head(base, admin),
        "cancel": lambda: hostile.json_head("POST", f"/jobs/{job_id}/cancel", host, auth=f"Bearer {owner.token}"),
    }
    crowd = hostile.SlowCrowd(host, port, heads, {"register": 300, "login": 100, "tus_patch": 100, "cancel": 50})
    download = (f"GET /download?fid={mp3_id} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {owner.token}\r\n\r\n")
    readers = hostile.SlowReaders(host, port, download.encode(), 100)
    crowd.start()
    readers.start()
    try:
        _wait(lambda: _series(gateway["metrics"], "gateway_downloads_in_progress") == 100, "100 downloads sending")
        assert crowd.open_count() >= 500  # closed ones are replaced every second: the pressure stays
        p99, statuses = _probe(base, job_id, victim.auth)
        with open(tmp_path / "mine.mp4", "rb") as f:
            normal = requests.post(f"{base}/upload", headers=victim.auth, files={"file": ("ok.mp4", f)}, timeout=60)
        print(f"under 550 slow bodies and 100 slow readers: p99 {p99 * 1000:.0f} ms of {len(statuses)} requests, "
              f"upload {normal.status_code}")
        assert statuses == [200] * len(statuses)
        assert p99 < 0.5, f"p99 {p99 * 1000:.0f} ms under slow clients"
        assert normal.status_code == 202, normal.text
        # a reader looks at its socket once a second: its status line may not be read yet
        _wait(lambda: "" not in readers.statuses(), "every reader's status line", 5)
        assert readers.statuses() == {"200": 100}
        # (a reader still has the bytes its kernel received before the cut to read: the server's count says it)
        _wait(lambda: crowd.closed["tus_patch"] >= 100
              and _series(gateway["metrics"], "gateway_downloads_in_progress") == 0
              and min(crowd.closed[name] for name in ("register", "login", "cancel")) >= 50,
              lambda: f"the slow clients closed by the server: {crowd.closed}, downloads in progress "
                      f"{_series(gateway['metrics'], 'gateway_downloads_in_progress')}",
              timeout=GRACE * 3)
    finally:
        crowd.close()
        readers.close()
    assert crowd.answers["register"].get("408", 0) >= 300 and crowd.answers["cancel"].get("408", 0) >= 50
    for reason in ("body", "slow"):
        assert _series(gateway["metrics"], "vid2mp3_http_client_timeouts_total", reason=reason) >= 100
    assert b'"reason": "slow"' in gateway["log"].read_bytes() and b'"reason": "body"' in gateway["log"].read_bytes()
    assert victim.job(job_id).json()["status"] != "cancelled", "a cancel with an unfinished body took effect"


def test_auth_is_read_the_same_way(stack):
    """auth runs the same worker: 300 bodies trickled into its /register and /login leave its /healthz fast."""
    host, port = "127.0.0.1", int(stack["auth"].rsplit(":", 1)[1])
    heads = {"register": lambda: hostile.json_head("POST", "/register", host),
             "login": lambda: hostile.json_head("POST", "/login", host, auth="Basic eDp5")}
    crowd = hostile.SlowCrowd(host, port, heads, {"register": 200, "login": 100}).start()
    try:
        latencies = []
        for _ in range(100):
            started = time.perf_counter()
            assert requests.get(f"{stack['auth']}/healthz", timeout=20).status_code == 200
            latencies.append(time.perf_counter() - started)
        assert crowd.open_count() >= 250
    finally:
        crowd.close()
    assert statistics.quantiles(latencies, n=100)[98] < 0.5


def test_trickling_uploads_hold_their_own_places_and_one_more_is_too_busy(gateway, stack, tmp_path):
    base, port = gateway["base"], gateway["port"]
    owner = Client(stack["gateway"]).signed_up()
    token = _admin_token()
    crowd = hostile.SlowCrowd("127.0.0.1", port, {"upload": lambda: hostile.upload_head("127.0.0.1", token)},
                              {"upload": UPLOADS_MAX - 1}).start()
    try:
        _wait(lambda: _series(gateway["metrics"], "gateway_uploads_in_progress") == UPLOADS_MAX - 1,
              f"{UPLOADS_MAX - 1} uploads in progress")
        answers = [requests.get(f"{base}/healthz", timeout=20).status_code for _ in range(10)]
        media = make_media(tmp_path / "ok.mp4", seconds=1)
        with open(media, "rb") as f:
            normal = requests.post(f"{base}/upload", headers=owner.auth, files={"file": ("ok.mp4", f)}, timeout=60)
        assert answers == [200] * 10 and normal.status_code == 202, normal.text
        extra = hostile.SlowCrowd("127.0.0.1", port, {"upload": lambda: hostile.upload_head("127.0.0.1", owner.token)},
                                  {"upload": 2}, sources=hostile.loopback_sources(2, first=1000)).start()
        try:
            _wait(lambda: extra.answers["upload"].get("503", 0) >= 1, "an upload refused with 503 too_busy", 20)
        finally:
            extra.close()
    finally:
        crowd.close()
    _wait(lambda: _series(gateway["metrics"], "gateway_uploads_in_progress") == 0, "every upload place given back")
    assert _series(gateway["metrics"], "gateway_too_busy_total", what="uploads") >= 1


def _closed_by_server(sock: socket.socket, keep_sending: bytes | None, limit: float = 40) -> bytes | None:
    """What the server sent before it closed the connection within `limit` seconds (None: it did
    not close); meanwhile `keep_sending` is sent every second (a never-ending header line, say)."""
    sock.settimeout(1)
    deadline, received = time.monotonic() + limit, b""
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
            if not data:
                return received
            received += data
            continue
        except TimeoutError:
            pass
        except OSError:
            return received
        if keep_sending:
            try:
                sock.sendall(keep_sending)
            except OSError:
                return received
    return None


def test_silent_unfinished_and_idle_clients_are_disconnected(gateway):
    upload_head = hostile.upload_head("x", _admin_token())
    cases = {  # what the client sends first, what it sends every second (None: nothing), the answer
        "silent connection": (b"", None, "idle", b""),
        "headers then silence": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", None, "headers", b"HTTP/1.1 408"),
        "headers that never finish": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-More: yes\r\n", "headers",
                                      b"HTTP/1.1 408"),
        "small body that never finishes": (hostile.json_head("POST", "/register", "x"), b" ", "body", b"HTTP/1.1 408"),
        "upload body then silence": (upload_head + b"some bytes", None, "idle", b""),
    }
    before = {reason: _series(gateway["metrics"], "vid2mp3_http_client_timeouts_total", reason=reason)
              for reason in ("idle", "headers", "body")}
    results: dict[str, bytes | None] = {}

    def run(name, first, then):
        with socket.create_connection(("127.0.0.1", gateway["port"]), timeout=5) as sock:
            sock.sendall(first)
            results[name] = _closed_by_server(sock, then)

    threads = [threading.Thread(target=run, args=(name, first, then)) for name, (first, then, _, _) in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for name, (_, _, _, answer) in cases.items():
        assert results[name] is not None and results[name].startswith(answer), (name, results[name])
        if answer:  # the worker's own answer, in the API's error shape
            assert b"Content-Type: application/problem+json" in results[name] and b'"code":"request_timeout"' in \
                results[name], results[name]
    assert requests.get(f"{gateway['base']}/healthz", timeout=10).status_code == 200
    for reason in before:
        assert _series(gateway["metrics"], "vid2mp3_http_client_timeouts_total", reason=reason) > before[reason]


def test_connections_per_client_address_are_capped(gateway):
    source = ("127.0.99.9", 0)
    held = [socket.create_connection(("127.0.0.1", gateway["port"]), timeout=5, source_address=source)
            for _ in range(PER_ADDRESS)]
    try:
        refused = socket.create_connection(("127.0.0.1", gateway["port"]), timeout=5, source_address=source)
        answer = _closed_by_server(refused, None, limit=10)
        assert answer is not None and answer.startswith(b"HTTP/1.1 429") and b"too_many_connections" in answer
        assert b"Retry-After: 5" in answer and b"Content-Type: application/problem+json" in answer
        other = requests.get(f"{gateway['base']}/healthz", timeout=10)  # another address is not affected
        assert other.status_code == 200
    finally:
        for sock in held:
            sock.close()
    _wait(lambda: _one_request_from(source, gateway["port"]).startswith(b"HTTP/1.1 200"), "the address's places back",
          20)
    assert _series(gateway["metrics"], "vid2mp3_http_refused_total", reason="per_address") >= 1


def _one_request_from(source: tuple[str, int], port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=source) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _closed_by_server(sock, None, limit=10) or b""


def test_bodies_are_read_whole_and_bounded(gateway):
    """Chunked and 100-continue bodies work; a body larger than the buffer on a route that does not
    stream bodies is refused at once, without a thread."""
    base = gateway["base"]
    email = f"chunked-{time.time_ns()}@example.com"
    body = f'{{"email": "{email}", "password": "correct horse battery"}}'.encode()
    chunked = requests.post(f"{base}/register", data=iter([body[:10], body[10:]]),
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert chunked.status_code == 201, chunked.text
    expect = requests.post(f"{base}/register", data=body.replace(b"chunked", b"expect"),
                           headers={"Content-Type": "application/json", "Expect": "100-continue"}, timeout=10)
    assert expect.status_code == 201, expect.text
    huge = requests.post(f"{base}/register", data=b"{" + b" " * 200_000 + b"}",
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    assert huge.headers["Content-Type"] == "application/problem+json" and huge.json()["status"] == 413
    huge_chunked = requests.post(f"{base}/register", data=iter([b"{", b" " * 100_000, b"}"]),
                                 headers={"Content-Type": "application/json"}, timeout=10)
    assert huge_chunked.status_code == 413
    # an OPTIONS (a CORS preflight) of a streaming route is answered without its view: a small body only
    huge_options = requests.options(f"{base}/upload", data=b" " * 200_000, timeout=10)
    assert huge_options.status_code == 413
    assert _series(gateway["metrics"], "vid2mp3_http_refused_total", reason="body_too_large") >= 3
