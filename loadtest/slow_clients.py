"""Slow clients against the gateway: N upload connections trickle their bodies while /healthz and
GET /jobs/<id> of another user are timed, and a normal upload must still complete.

    .venv/bin/python loadtest/slow_clients.py                       # 200 tricklers, every option
    .venv/bin/python loadtest/slow_clients.py --tricklers 50 --seconds 10 --options chosen
    .venv/bin/python loadtest/slow_clients.py --gevent-path /tmp/gevent   # gevent installed with
        # pip install --target /tmp/gevent gevent (it is not a dependency of the project)

It starts an isolated local stack (tests/devkit/stack.py), then for each option a gateway process
of its own on that stack with the option's gunicorn settings, and measures the latencies without
tricklers (the baseline of the same run) and with them. Prints a Markdown table (for
loadtest/BENCHMARKS.md). The tricklers are tests/devkit/hostile_http.py's SlowCrowd, from one address.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from devkit.client import Client
from devkit.hostile_http import SlowCrowd, one_address, upload_head
from devkit.media import make_media
from devkit.stack import ROOT, IsolatedStack, start_gateway
from services import devstack

# name -> (extra gunicorn arguments, extra environment); "chosen" is the repository's gunicorn_conf. Every
# trickler comes from 127.0.0.1, so the per-address connection cap is off: the threads are measured here
# (tests/integration/test_slow_clients.py spreads its clients over many addresses and tests the cap).
UNCAPPED = {"HTTP_MAX_CONNECTIONS_PER_ADDRESS": "0"}
OPTIONS = {
    "gthread-8 (before)": (["--worker-class", "gthread", "--threads", "8"], UNCAPPED),
    "chosen: requests read by the event loop, 8 threads + one per place": ([], UNCAPPED),
    "gevent": (["--worker-class", "gevent", "--worker-connections", "1000"], UNCAPPED),
}


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


def run_option(name: str, stack, users: dict, media: Path, n: int, seconds: float) -> dict:
    args, extra = OPTIONS[name]
    log = Path(tempfile.mkdtemp(prefix="slow-clients-")) / "gateway.log"
    env = dict(stack.env, MONGO_URI=stack.mongo_uri, AUTH_URL=stack.auth)
    proc, base, _ = start_gateway(env, args, extra, log)
    try:
        prober = users["prober"]
        baseline = probe(base, users["job_id"], prober.auth, seconds / 2)
        token = users["trickler"].token
        tricklers = SlowCrowd("127.0.0.1", int(base.rsplit(":", 1)[1]),
                             {"upload": lambda: upload_head("127.0.0.1", token)},
                             {"upload": n}, sources=one_address("127.0.0.1")).start()
        try:
            _wait_admitted(stack, n)  # every trickler past its headers and admission, into its body
            upload: dict = {}
            uploader = threading.Thread(target=lambda: upload.update(_normal_upload(base, users["uploader"], media)))
            uploader.start()
            loaded = probe(base, users["job_id"], prober.auth, seconds)
            uploader.join(60)
        finally:
            tricklers.close()
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
    stack = IsolatedStack("bench", {"UPLOADS_MAX": str(args.tricklers + 16)})
    results = []
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
