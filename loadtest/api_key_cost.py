"""What an API key costs per request against a JWT, on an isolated local stack (one gateway worker):

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python loadtest/api_key_cost.py [--rounds 2000]

The same request (`GET /jobs?limit=1`) made one at a time over one kept-alive connection, alternately
with the user's JWT (verified in the gateway, cached) and with a full API key (checked by auth on every
request: one kept-alive HTTP call and one primary-key read in MariaDB); prints the latency of each
and the CPU auth spent per key request. Not run in CI (no timed assertions in tests).
"""
from __future__ import annotations

import argparse
import statistics
import time

import requests

from bench_figures import cpu_seconds, gunicorn_worker
from devkit.client import Client
from devkit.stack import IsolatedStack


def measure(stack: IsolatedStack, rounds: int) -> dict:
    user = Client(stack.gateway).signed_up()
    key = requests.post(f"{stack.gateway}/me/api-keys", headers=user.auth, json={"name": "bench"}, timeout=10)
    key.raise_for_status()
    headers = {"jwt": user.auth, "key": {"Authorization": f"Bearer {key.json()['key']}"}}
    session, url = requests.Session(), f"{stack.gateway}/jobs?limit=1"
    times: dict[str, list[float]] = {"jwt": [], "key": []}
    auth_cpu = {"jwt": 0.0, "key": 0.0}
    auth = gunicorn_worker(stack.pid("auth"))
    for n in range(rounds + 50):
        for kind in ("jwt", "key"):
            cpu, started = cpu_seconds(auth, children=False), time.perf_counter()
            response = session.get(url, headers=headers[kind], timeout=10)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            if n >= 50:  # the first rounds warm the caches and the connections
                times[kind].append(elapsed)
                auth_cpu[kind] += cpu_seconds(auth, children=False) - cpu
    return {kind: {"median_ms": statistics.median(t) * 1000, "p90_ms": statistics.quantiles(t, n=10)[-1] * 1000,
                   "auth_cpu_ms_per_request": auth_cpu[kind] * 1000 / rounds} for kind, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    stack = IsolatedStack("bench", settings={"GUNICORN_WORKERS": "1"})
    try:
        stack.up()
        result = measure(stack, args.rounds)
    finally:
        stack.destroy()
    for kind, figures in result.items():
        print(f"{kind}: median {figures['median_ms']:.2f} ms, p90 {figures['p90_ms']:.2f} ms, "
              f"auth CPU {figures['auth_cpu_ms_per_request']:.2f} ms/request")
    extra = result["key"]["median_ms"] - result["jwt"]["median_ms"]
    print(f"an API key adds {extra:.2f} ms (median) per request over a JWT")


if __name__ == "__main__":
    main()
