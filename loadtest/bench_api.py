"""The bench's API figures (issue 16), on the bench's one gateway process (GUNICORN_WORKERS=1):

- requests/s of an authenticated `GET /jobs/<id>` against `GET /healthz`, one load tool (Locust,
  loadtest/api_rate_locustfile.py) in the same run: the gap is what authentication and one MongoDB read cost;
- login latency (`POST /login` through the gateway, one at a time) against the argon2id verification
  alone with the same ARGON2_* settings, timed in this process, interleaved with the logins.
"""
from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests
from argon2 import PasswordHasher

import bench_figures as figures  # loadtest/bench_figures.py
import run as locust_run  # loadtest/run.py
from services.common import config

HERE = Path(__file__).resolve().parent
TARGETS = {"jobs_vs_healthz": 0.5, "login_vs_verify": 1.3}


def _processes(stack) -> dict[str, int]:
    return {"gateway": figures.gunicorn_worker(stack.pid("gateway")), "mongodb": stack.pid("mongodb"),
            "auth": figures.gunicorn_worker(stack.pid("auth"))}


def _rate(stack, path: str, name: str, token: str | None, users: int, seconds: int,
          headers: dict[str, str] | None = None) -> dict:
    """Requests/s of one GET path: wrk when installed (a C load tool: it leaves the 2 cores to the gateway),
    else Locust."""
    if shutil.which("wrk"):
        return _rate_wrk(stack, path, token, WRK_CONNECTIONS, seconds, headers or {})
    return _rate_locust(stack, path, name, token, users, seconds)


WRK_CONNECTIONS = 16


def _rate_wrk(stack, path: str, token: str | None, connections: int, seconds: int, headers: dict) -> dict:
    headers = dict(headers, **({"Authorization": f"Bearer {token}"} if token else {}))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    figures.log(f"api: wrk, {connections} connections on {path} for {seconds} s"
                + (f" ({', '.join(k for k in headers if k != 'Authorization')})" if len(headers) > bool(token) else ""))
    pids = _processes(stack)
    before = {name: figures.cpu_seconds(pid) for name, pid in pids.items()}
    out = subprocess.run(command + [stack.gateway + path], capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    count = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    odd = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return {"tool": f"wrk -t1 -c{connections}", "rps": rps, "requests": count,
            "failures": int(odd.group(1)) if odd else 0,
            "mean_ms": float(latency.group(1)) * scale[latency.group(2)] if latency else None,
            "cpu_ms_per_request": {name: (figures.cpu_seconds(pid) - before[name]) * 1000 / max(count, 1)
                                   for name, pid in pids.items()}}


def _rate_locust(stack, path: str, name: str, token: str | None, users: int, seconds: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="vid2mp3-bench-api-"))
    env = dict(stack.env, API_PATH=path, API_NAME=name, API_TOKEN=token or "")
    figures.log(f"api: {users} users on {name} for {seconds} s ...")
    pids = _processes(stack)
    before = {name: figures.cpu_seconds(pid) for name, pid in pids.items()}
    code = locust_run.run(users, users, f"{seconds}s", stack.gateway, out, locustfile=HERE / "api_rate_locustfile.py",
                          env=env, timeout=seconds + 120)
    row = next(r for r in locust_run.read_stats(out) if r["Name"] == name)
    count = max(int(row["Request Count"]), 1)
    return {"tool": f"Locust {users} users", "rps": float(row["Requests/s"]), "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]), "p50_ms": float(row["50%"]), "locust_exit_code": code,
            # where the time goes: CPU each process spent per request during the phase
            "cpu_ms_per_request": {name: (figures.cpu_seconds(pid) - before[name]) * 1000 / count
                                   for name, pid in pids.items()}}


def _hasher(stack) -> PasswordHasher:
    """The hasher auth runs with: the stack's ARGON2_* settings, else the defaults."""
    value = {name: int(stack.env.get(name, config.env(name)))
             for name in ("ARGON2_TIME_COST", "ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM")}
    return PasswordHasher(time_cost=value["ARGON2_TIME_COST"], memory_cost=value["ARGON2_MEMORY_KIB"],
                          parallelism=value["ARGON2_PARALLELISM"])


def _login_vs_verify(stack, user: figures.User, rounds: int) -> dict:
    hasher = _hasher(stack)
    stored = hasher.hash(user.password)
    session = requests.Session()
    logins, verifies = [], []
    for _ in range(rounds):  # interleaved: both see the same machine load
        started = time.perf_counter()
        response = session.post(f"{stack.gateway}/login", auth=(user.email, user.password), timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"login answered {response.status_code}: {response.text[:300]}")
        logins.append(time.perf_counter() - started)
        started = time.perf_counter()
        hasher.verify(stored, user.password)
        verifies.append(time.perf_counter() - started)
    login, verify = statistics.median(logins[1:]), statistics.median(verifies[1:])
    return {"login_ms": login * 1000, "verify_ms": verify * 1000, "ratio": login / verify, "rounds": rounds,
            "argon2": {"time_cost": hasher.time_cost, "memory_kib": hasher.memory_cost,
                       "parallelism": hasher.parallelism}}


def figure_api(stack, clip: Path, users: int = 8, seconds: int = 20, rounds: int = 15) -> dict:
    user = figures.User(stack.gateway)
    job_id, _ = user.upload(clip)
    user.wait(job_id, 600)  # converted before the load starts: the converter is idle while we measure
    token = user.headers["Authorization"].split(" ", 1)[1]
    etag = requests.get(f"{stack.gateway}/jobs/{job_id}", headers=user.headers, timeout=30).headers["ETag"]
    healthz = _rate(stack, "/healthz", "/healthz", None, users, seconds)
    jobs = _rate(stack, f"/jobs/{job_id}", "/jobs/[id]", token, users, seconds)
    # a client polling with the ETag of its last answer, while the job does not change: 304s
    unchanged = _rate(stack, f"/jobs/{job_id}", "/jobs/[id] 304", token, users, seconds, {"If-None-Match": etag})
    # Then logins while a status load runs (a phase of its own: argon2 in auth and in the bench would take
    # CPU from the measured phases): the seed's 2× came from logins sharing auth with the per-request
    # token checks; now auth serves logins only.
    loaded: dict = {}
    side = threading.Thread(target=lambda: loaded.update(_login_vs_verify(stack, user, max(seconds // 4, 4))))
    side.start()
    _rate(stack, f"/jobs/{job_id}", "/jobs/[id]", token, users, seconds)
    side.join()
    result = {"users": users, "seconds": seconds, "config": _config(stack), "healthz": healthz, "jobs": jobs,
              "jobs_vs_healthz": jobs["rps"] / healthz["rps"] if healthz["rps"] else None, "not_modified": unchanged,
              "not_modified_vs_healthz": unchanged["rps"] / healthz["rps"] if healthz["rps"] else None,
              "login": _login_vs_verify(stack, user, rounds), "login_under_load": loaded}
    figures.log(f"api: {result}")
    return result


def _config(stack) -> dict:
    """What the gateway runs with during the figure: every /jobs/<id> request is traced (a Flask server
    span and a pymongo client span, exported over OTLP/HTTP in batches), counted in the RED metrics and
    logged at the stack's level; /healthz is excluded from tracing and metrics as in production."""
    env = stack.env
    return {"traces_sampler": env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on (SDK default)")
            + (f" {env['OTEL_TRACES_SAMPLER_ARG']}" if env.get("OTEL_TRACES_SAMPLER_ARG") else "")
            + f"; polling requests (OTEL_POLL_SAMPLE_RATIO) {_poll_ratio(env)}",
            "traces_exporter": "OTLP/HTTP protobuf, batched (OTEL_BSP_SCHEDULE_DELAY="
            f"{env.get('OTEL_BSP_SCHEDULE_DELAY', '5000')} ms), to the bench's in-process receiver",
            "log_level": env.get("LOG_LEVEL", "INFO"),
            "gunicorn": f"1 worker, gthread, GUNICORN_THREADS={env.get('GUNICORN_THREADS', '8')}",
            "load": "nothing else: the login-under-load check runs in a third phase of its own"}


def _poll_ratio(env: dict) -> str:
    """The stack's OTEL_POLL_SAMPLE_RATIO, else its default; "none" for a tree that predates it."""
    try:
        return env.get("OTEL_POLL_SAMPLE_RATIO") or config.env("OTEL_POLL_SAMPLE_RATIO")
    except KeyError:
        return "none (every request sampled like the others)"


def rows(api: dict) -> list[str]:
    """The figures' rows of the summary table in BENCHMARKS.md."""
    from bench_report import verdict

    h, j, login = api["healthz"], api["jobs"], api["login"]
    tool = j.get("tool") or f"Locust {api['users']} users"
    rows = [f"| api. `GET /jobs/<id>` (authenticated, one MongoDB read) requests/s, one gateway process, "
            f"{tool} × {api['seconds']} s | {j['rps']:.0f}/s ({j['failures']} failed) | "
            f"`GET /healthz` {h['rps']:.0f}/s | {api['jobs_vs_healthz']:.2f} | ≥ {TARGETS['jobs_vs_healthz']} | "
            f"{verdict(api['jobs_vs_healthz'], TARGETS['jobs_vs_healthz'], lower_is_better=False)} |"]
    n = api.get("not_modified")
    if n:
        rows.append(f"| api. `GET /jobs/<id>` with `If-None-Match` of the unchanged job (304), {tool} | "
                    f"{n['rps']:.0f}/s ({n['failures']} not 2xx/3xx) | `GET /healthz` {h['rps']:.0f}/s | "
                    f"{api['not_modified_vs_healthz']:.2f} | ≥ {TARGETS['jobs_vs_healthz']} | "
                    f"{verdict(api['not_modified_vs_healthz'], TARGETS['jobs_vs_healthz'], lower_is_better=False)} |")
    return rows + [
            f"| api. CPU per request (gateway worker / MongoDB stand-in / auth), `/jobs/<id>` "
            f"{'/ 304 ' if n else ''}vs `/healthz` | "
            f"{_cpu(j)}{' / 304: ' + _cpu(n) if n else ''} | {_cpu(h)} | | | where the time goes |",
            f"| api. login latency (`POST /login` via the gateway, median of {login['rounds'] - 1}) | "
            f"{login['login_ms']:.0f} ms | argon2id verify alone {login['verify_ms']:.0f} ms "
            f"(t={login['argon2']['time_cost']}, m={login['argon2']['memory_kib']} KiB, "
            f"p={login['argon2']['parallelism']}) | {login['ratio']:.2f}× | ≤ {TARGETS['login_vs_verify']}× | "
            f"{verdict(login['ratio'], TARGETS['login_vs_verify'])} |"] + _loaded_row(api.get("login_under_load")) \
        + _config_row(api.get("config"))


def _config_row(config: dict | None) -> list[str]:
    if not config:
        return []
    return ["| api. configuration measured | " + "; ".join(f"{k}: {v}" for k, v in config.items()) + " | | | | |"]


def _cpu(phase: dict) -> str:
    cpu = phase.get("cpu_ms_per_request", {})
    return " / ".join(f"{cpu.get(name, 0):.2f} ms" for name in ("gateway", "mongodb", "auth"))


def _loaded_row(loaded: dict | None) -> list[str]:
    if not loaded:
        return []
    return [f"| api. login latency during the `GET /jobs/<id>` load (median of {loaded['rounds'] - 1}) | "
            f"{loaded['login_ms']:.0f} ms | argon2id verify alone, same moments {loaded['verify_ms']:.0f} ms | "
            f"{loaded['ratio']:.2f}× | ≤ {TARGETS['login_vs_verify']}× | "
            f"{_verdict(loaded['ratio'], TARGETS['login_vs_verify'])} |"]


def _verdict(value: float, target: float) -> str:
    from bench_report import verdict

    return verdict(value, target)
