"""Slow clients block nobody: 200 trickling uploads leave /healthz, another user's GET /jobs/<id> and a
normal upload working; beyond UPLOADS_MAX an upload answers 503 too_busy; silent connections, idle
bodies and never-finishing headers are closed. (The latencies are figures of loadtest/slow_clients.py.)"""
from __future__ import annotations

import importlib.util
import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.helpers import Client, make_media
from tests.support.stack import ROOT

TRICKLERS = 200
TIMEOUT = 3  # the private gateway's header and idle timeouts, seconds


def _slow_clients():
    spec = importlib.util.spec_from_file_location("slow_clients", ROOT / "loadtest" / "slow_clients.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slow = _slow_clients()


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    """A gateway process of our own on the test stack: room for exactly TRICKLERS + 1 uploads, short timeouts."""
    env = dict(os.environ, MONGO_URI=os.environ["MONGO_URI"], AUTH_URL=stack["auth"])
    log = tmp_path_factory.mktemp("slow") / "gateway.log"
    proc, base, metrics = slow.start_gateway(env, [], {"UPLOADS_MAX": str(TRICKLERS + 1),
                                                       "HTTP_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
                                                       "HTTP_IDLE_TIMEOUT_SECONDS": str(TIMEOUT)}, log)
    yield {"base": base, "port": int(base.rsplit(":", 1)[1]), "metrics": metrics, "log": log}
    proc.terminate()
    proc.wait(30)


def _admin(base: str) -> Client:
    """An admin (exempt from quotas): 200 uploads of one user are the server's problem here, not the quota's."""
    user = Client(base).signed_up()
    subprocess.run([sys.executable, "-m", "services.auth.cli", "set-admin", user.email], cwd=ROOT, check=True,
                   capture_output=True)
    user.login()
    return user


def _metric(metrics_url: str, line_start: str) -> float | None:
    for line in requests.get(f"{metrics_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


def _wait(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_200_trickling_uploads_block_nobody_and_one_more_is_too_busy(gateway, stack, tmp_path):
    base, port = gateway["base"], gateway["port"]
    owner = Client(stack["gateway"]).signed_up()
    media = make_media(tmp_path / "ok.mp4", seconds=1)
    job_id = owner.upload(media).json()["job_id"]
    trickler = slow.Trickler("127.0.0.1", port, _admin(stack["gateway"]).token, TRICKLERS).start()
    try:
        _wait(lambda: _metric(gateway["metrics"], "gateway_uploads_in_progress") == TRICKLERS,
              f"{TRICKLERS} uploads in progress")
        answers = [requests.get(f"{base}/healthz", timeout=20).status_code for _ in range(10)]
        answers += [owner_get.status_code for owner_get in
                    (requests.get(f"{base}/jobs/{job_id}", headers=owner.auth, timeout=20) for _ in range(10))]
        assert answers == [200] * 20
        with open(media, "rb") as f:
            normal = requests.post(f"{base}/upload", headers=owner.auth, files={"file": ("ok.mp4", f)}, timeout=60)
        assert normal.status_code == 202, normal.text
        assert not any(trickler.answers()), "a trickling upload was answered while it was still sending"
        extra = slow.Trickler("127.0.0.1", port, owner.token, 2).start()  # the 201st place, then none left
        try:
            ready, _, _ = select.select(extra.socks, [], [], 20)
            assert len(ready) == 1
            busy = _read_answer(ready[0])
            assert busy.startswith("HTTP/1.1 503") and "too_busy" in busy and "Retry-After: 10" in busy, busy
        finally:
            extra.close()
    finally:
        trickler.close()
    _wait(lambda: _metric(gateway["metrics"], "gateway_uploads_in_progress") == 0, "every upload place given back")
    assert _metric(gateway["metrics"], 'gateway_too_busy_total{what="uploads"}') >= 1


def _read_answer(sock: socket.socket) -> str:
    """The whole short answer on `sock` (headers and body may come in separate segments)."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 20:
        more = sock.recv(4096)
        if not more:
            break
        data += more
    return data.decode()


def _closed_by_server(sock: socket.socket, keep_sending: bytes | None, limit: float = 40) -> bool:
    """Whether the server closes the connection (EOF or reset) within `limit` seconds; meanwhile
    `keep_sending` is sent every second (a never-ending header line, say)."""
    sock.settimeout(1)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
            if not data:
                return True
            continue  # an answer (408) before the close
        except TimeoutError:
            pass
        except OSError:
            return True
        if keep_sending:
            try:
                sock.sendall(keep_sending)
            except OSError:
                return True
    return False


def test_silent_idle_and_never_finishing_clients_are_disconnected(gateway, stack):
    token = Client(stack["gateway"]).signed_up().token
    upload_head = slow.Trickler("127.0.0.1", gateway["port"], token, 1).head()
    cases = {  # what the client sends first, then what it sends every second (None: nothing)
        "silent connection": (b"", None),
        "headers then silence": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", None),
        "headers that never finish": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-More: yes\r\n"),
        "upload body then silence": (upload_head + b"some bytes", None),
    }
    results: dict[str, bool] = {}

    def run(name, first, then):
        with socket.create_connection(("127.0.0.1", gateway["port"]), timeout=5) as sock:
            sock.sendall(first)
            results[name] = _closed_by_server(sock, then)

    threads = [threading.Thread(target=run, args=(name, *case)) for name, case in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == dict.fromkeys(cases, True)
    assert requests.get(f"{gateway['base']}/healthz", timeout=10).status_code == 200
    for reason in ("idle", "request"):
        assert _metric(gateway["metrics"], f'vid2mp3_http_client_timeouts_total{{reason="{reason}"}}') >= 1
