"""Slow clients against the gateway: N upload connections trickle their bodies while /healthz and
GET /jobs/<id> of another user are timed, and a normal upload must still complete.

    .venv/bin/python loadtest/slow_clients.py                       # 200 tricklers, every option
    .venv/bin/python loadtest/slow_clients.py --tricklers 50 --seconds 10 --options chosen
    .venv/bin/python loadtest/slow_clients.py --gevent-path /tmp/gevent   # gevent installed with
        # pip install --target /tmp/gevent gevent (it is not a dependency of the project)

It starts an isolated local stack (tests/support/stack.py), then for each option a gateway process
of its own on that stack with the option's gunicorn settings, and measures the latencies without
tricklers (the baseline of the same run) and with them. Prints a Markdown table (for
loadtest/BENCHMARKS.md). The Trickler is also used by tests/integration/test_slow_clients.py.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

# name -> (extra gunicorn arguments, extra environment); "chosen" is the repository's gunicorn_conf. Every
# trickler comes from 127.0.0.1, so the per-address connection cap is off: the threads are measured here
# (tests/integration/test_slow_clients.py spreads its clients over many addresses and tests the cap).
UNCAPPED = {"HTTP_MAX_CONNECTIONS_PER_ADDRESS": "0"}
OPTIONS = {
    "gthread-8 (before)": (["--worker-class", "gthread", "--threads", "8"], UNCAPPED),
    "chosen: requests read by the event loop, 8 threads + one per place": ([], UNCAPPED),
    "gevent": (["--worker-class", "gevent", "--worker-connections", "1000"], UNCAPPED),
}


class Trickler:
    """`n` POST /upload connections that send their headers and then one body byte every `interval`
    seconds, from one thread (the server must cope, not the client).

    `head` (a callable) makes another request's line, headers and body start (the soak trickles
    /register, /login and tus PATCH bodies); with `reopen`, a connection the server closed or reset
    is replaced by a new one, so the pressure lasts as long as the trickler runs; `source` is the
    local address to connect from (another loopback address is another client to the server)."""

    def __init__(self, host: str, port: int, token: str, n: int, interval: float = 1.0, declared: int = 10_000_000,
                 head=None, reopen: bool = False, source: str = ""):
        self.host, self.port, self.token, self.n = host, port, token, n
        self.interval, self.declared = interval, declared
        self.make_head = head or self.head
        self.reopen, self.source = reopen, source
        self.opened = 0  # connections opened, replacements included
        self.socks: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def head(self) -> bytes:
        boundary = "trickle"
        preamble = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n'
                    "Content-Type: video/mp4\r\n\r\n")
        return (f"POST /upload HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {self.declared}\r\n\r\n{preamble}").encode()

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=10, source_address=(self.source, 0))
        sock.sendall(self.make_head())
        self.opened += 1
        return sock

    def start(self) -> "Trickler":
        for _ in range(self.n):
            self.socks.append(self._open())
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            for i, sock in enumerate(self.socks):
                try:
                    sock.send(b"x")
                except OSError:  # answered (503, 408, 429) and closed: it stays counted as opened
                    if self.reopen and not self.stopped.is_set():
                        self.socks[i] = self._replace(sock)

    def _replace(self, sock: socket.socket) -> socket.socket:
        sock.close()
        try:
            return self._open()
        except (OSError, requests.RequestException):
            return sock  # the server is down: the closed socket fails again next round and is retried

    def answers(self) -> list[bytes]:
        """The first bytes each connection received so far (b"" when none), without waiting."""
        seen = []
        for sock in self.socks:
            sock.setblocking(False)
            try:
                seen.append(sock.recv(200))
            except BlockingIOError:
                seen.append(b"")
            except OSError:
                seen.append(b"<reset>")
        return seen

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


def timed_get(url: str, headers: dict | None = None, timeout: float = 20) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        answer = requests.get(url, headers=headers, timeout=timeout)
        status = answer.status_code
        if status != 200 and os.environ.get("SLOW_CLIENTS_DEBUG"):
            print(url, status, answer.text[:200], file=sys.stderr)
    except requests.RequestException:
        status = 0
    return time.perf_counter() - started, status


def probe(base: str, job_id: str, auth: dict, seconds: float) -> dict:
    """Alternate /healthz and GET /jobs/<id> for `seconds`; latencies in ms and failures."""
    lat: dict[str, list[float]] = {"healthz": [], "job": []}
    failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, url, headers in (("healthz", f"{base}/healthz", None), ("job", f"{base}/jobs/{job_id}", auth)):
            elapsed, status = timed_get(url, headers)
            lat[name].append(elapsed * 1000)
            failed += status != 200
        time.sleep(0.02)
    return {name: _percentiles(values) for name, values in lat.items()} | {"failed": failed}


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], "max": ordered[-1]}


def start_gateway(env: dict, args: list[str], extra_env: dict, log: Path) -> tuple[subprocess.Popen, str, str]:
    """A gateway process of its own on the stack that `env` names (MONGO_URI and AUTH_URL included):
    the process, its base URL and its metrics URL."""
    from tests.support.net import free_port, wait_ready

    port, metrics_port = free_port(), free_port()
    env = dict(env, GATEWAY_PORT=str(port), GATEWAY_METRICS_PORT=str(metrics_port), OUTBOX_INTERVAL_SECONDS="0",
               OTEL_SERVICE_NAME="gateway", OTEL_TRACES_EXPORTER="none", **extra_env)
    proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "python:services.common.gunicorn_conf", *args,
                             "services.gateway:create_app()"], env=env, cwd=ROOT, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/healthz", "gateway", proc)
    return proc, base, f"http://127.0.0.1:{metrics_port}"


def run_option(name: str, stack, users: dict, media: Path, n: int, seconds: float) -> dict:
    args, extra = OPTIONS[name]
    log = Path(tempfile.mkdtemp(prefix="slow-clients-")) / "gateway.log"
    env = dict(stack.env, MONGO_URI=stack.mongo_uri, AUTH_URL=stack.auth)
    proc, base, _ = start_gateway(env, args, extra, log)
    try:
        prober = users["prober"]
        baseline = probe(base, users["job_id"], prober.auth, seconds / 2)
        trickler = Trickler("127.0.0.1", int(base.rsplit(":", 1)[1]), users["trickler"].token, n).start()
        try:
            _wait_admitted(stack, n)  # every trickler past its headers and admission, into its body
            upload: dict = {}
            uploader = threading.Thread(target=lambda: upload.update(_normal_upload(base, users["uploader"], media)))
            uploader.start()
            loaded = probe(base, users["job_id"], prober.auth, seconds)
            uploader.join(60)
        finally:
            trickler.close()
        return {"option": name, "baseline": baseline, "loaded": loaded, "upload": upload}
    finally:
        proc.terminate()
        proc.wait(30)


def _wait_admitted(stack, n: int, timeout: float = 60) -> None:
    import pymongo

    uploads = pymongo.MongoClient(stack.mongo_uri)[stack.env["MONGO_JOBS_DB"]].uploads
    deadline = time.monotonic() + timeout
    while uploads.count_documents({}) < n and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)


def _normal_upload(base: str, client, media: Path) -> dict:
    started = time.perf_counter()
    try:
        with open(media, "rb") as f:
            answer = requests.post(f"{base}/upload", headers=client.auth, files={"file": ("ok.mp4", f)}, timeout=60)
        status = answer.status_code
        if status != 202 and os.environ.get("SLOW_CLIENTS_DEBUG"):
            print("upload", status, answer.text[:200], file=sys.stderr)
    except requests.RequestException:
        status = 0
    return {"status": status, "seconds": time.perf_counter() - started}


def table(results: list[dict], n: int) -> str:
    rows = [f"| option | /healthz p50 / p99 / max (ms), no load | with {n} tricklers | GET /jobs/<id> p99 no load "
            "/ loaded (ms) | failed probes | normal upload | p99 ratio loaded / baseline (healthz) |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        b, lo = r["baseline"], r["loaded"]
        fmt = lambda p: f"{p['p50']:.1f} / {p['p99']:.1f} / {p['max']:.0f} (n={p['n']})"  # noqa: E731
        rows.append(f"| {r['option']} | {fmt(b['healthz'])} | {fmt(lo['healthz'])} | {b['job']['p99']:.1f} / "
                    f"{lo['job']['p99']:.1f} | {lo['failed']} | {r['upload'].get('status')} in "
                    f"{r['upload'].get('seconds', 0):.1f} s | {lo['healthz']['p99'] / b['healthz']['p99']:.1f} |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tricklers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--options", default="all", help="comma-separated prefixes of option names, or all")
    p.add_argument("--gevent-path", default="", help="a folder where gevent is installed (pip --target)")
    args = p.parse_args()
    if args.gevent_path:
        OPTIONS["gevent"][1]["PYTHONPATH"] = args.gevent_path
    chosen = [o for o in OPTIONS if args.options == "all" or any(o.startswith(x) for x in args.options.split(","))]
    from tests.helpers import Client, make_media
    from tests.support.stack import IsolatedStack

    stack = IsolatedStack("bench", {"UPLOADS_MAX": str(args.tricklers + 16)})
    results = []
    from services import devstack

    devstack.ensure_rabbitmq()
    devstack.ensure_mariadb()
    try:
        stack.up()
        media = make_media(stack.home / "ok.mp4", seconds=1)
        users = {k: Client(stack.gateway).signed_up() for k in ("trickler", "prober", "uploader")}
        # One admin (exempt from quotas) opens every trickling upload: the server is measured, not the quota.
        subprocess.run([sys.executable, "-m", "services.auth.cli", "set-admin", users["trickler"].email], cwd=ROOT,
                       env=stack.env, check=True, capture_output=True)
        users["trickler"].login()
        answer = users["prober"].upload(media)
        assert answer.status_code == 202, answer.text
        users["job_id"] = answer.json()["job_id"]
        for name in chosen:
            print(f"measuring {name} ...", file=sys.stderr)
            results.append(run_option(name, stack, users, media, args.tricklers, args.seconds))
    finally:
        stack.destroy()
    print(table(results, args.tricklers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
