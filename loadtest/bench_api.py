"""The bench's API figures (issue 16), on the bench's one gateway process (GUNICORN_WORKERS=1):

- requests/s of an authenticated `GET /jobs/<id>` against `GET /healthz`, one load tool (Locust,
  loadtest/api_rate_locustfile.py) in the same run: the gap is what authentication and one MongoDB read cost;
- login latency (`POST /login` through the gateway, one at a time) against the argon2id verification
  alone with the same ARGON2_* settings, timed in this process, interleaved with the logins.
"""
from __future__ import annotations

import statistics
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


def _rate(stack, path: str, name: str, token: str | None, users: int, seconds: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="vid2mp3-bench-api-"))
    env = dict(stack.env, API_PATH=path, API_NAME=name, API_TOKEN=token or "")
    figures.log(f"api: {users} users on {name} for {seconds} s ...")
    pids = {"gateway": figures.gunicorn_worker(stack.pid("gateway")), "mongodb": stack.pid("mongodb"),
            "auth": figures.gunicorn_worker(stack.pid("auth"))}
    before = {name: figures.cpu_seconds(pid) for name, pid in pids.items()}
    code = locust_run.run(users, users, f"{seconds}s", stack.gateway, out, locustfile=HERE / "api_rate_locustfile.py",
                          env=env, timeout=seconds + 120)
    row = next(r for r in locust_run.read_stats(out) if r["Name"] == name)
    count = max(int(row["Request Count"]), 1)
    return {"rps": float(row["Requests/s"]), "requests": int(row["Request Count"]),
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
    healthz = _rate(stack, "/healthz", "/healthz", None, users, seconds)
    jobs = _rate(stack, f"/jobs/{job_id}", "/jobs/[id]", token, users, seconds)
    # Then logins while a status load runs (a phase of its own: argon2 in auth and in the bench would take
    # CPU from the measured phases): the seed's 2× came from logins sharing auth with the per-request
    # token checks; now auth serves logins only.
    loaded: dict = {}
    side = threading.Thread(target=lambda: loaded.update(_login_vs_verify(stack, user, max(seconds // 4, 4))))
    side.start()
    _rate(stack, f"/jobs/{job_id}", "/jobs/[id]", token, users, seconds)
    side.join()
    result = {"users": users, "seconds": seconds, "config": _config(stack), "healthz": healthz, "jobs": jobs,
              "jobs_vs_healthz": jobs["rps"] / healthz["rps"] if healthz["rps"] else None,
              "login": _login_vs_verify(stack, user, rounds), "login_under_load": loaded}
    figures.log(f"api: {result}")
    return result


def _config(stack) -> dict:
    """What the gateway runs with during the figure: every /jobs/<id> request is traced (a Flask server
    span and a pymongo client span, exported over OTLP/HTTP in batches), counted in the RED metrics and
    logged at the stack's level; /healthz is excluded from tracing and metrics as in production."""
    env = stack.env
    return {"traces_sampler": env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on (SDK default)")
            + (f" {env['OTEL_TRACES_SAMPLER_ARG']}" if env.get("OTEL_TRACES_SAMPLER_ARG") else ""),
            "traces_exporter": "OTLP/HTTP protobuf, batched (OTEL_BSP_SCHEDULE_DELAY="
            f"{env.get('OTEL_BSP_SCHEDULE_DELAY', '5000')} ms), to the bench's in-process receiver",
            "log_level": env.get("LOG_LEVEL", "INFO"),
            "gunicorn": f"1 worker, gthread, GUNICORN_THREADS={env.get('GUNICORN_THREADS', '8')}",
            "load": "nothing else: the login-under-load check runs in a third phase of its own"}


def rows(api: dict) -> list[str]:
    """The figures' rows of the summary table in BENCHMARKS.md."""
    from bench_report import verdict

    h, j, login = api["healthz"], api["jobs"], api["login"]
    return [f"| api. `GET /jobs/<id>` (authenticated, one MongoDB read) requests/s, one gateway process, Locust "
            f"{api['users']} users × {api['seconds']} s | {j['rps']:.0f}/s ({j['failures']} failed) | "
            f"`GET /healthz` {h['rps']:.0f}/s | {api['jobs_vs_healthz']:.2f} | ≥ {TARGETS['jobs_vs_healthz']} | "
            f"{verdict(api['jobs_vs_healthz'], TARGETS['jobs_vs_healthz'], lower_is_better=False)} |",
            f"| api. CPU per request (gateway worker / MongoDB stand-in / auth), `/jobs/<id>` vs `/healthz` | "
            f"{_cpu(j)} | {_cpu(h)} | | | where the time goes |",
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
