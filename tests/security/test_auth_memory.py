"""auth's memory is bounded by its settings: however many logins arrive at once, at most
ARGON2_MAX_CONCURRENT argon2id hashes run, so the worker's peak (VmHWM) stays under the limit the README
formula gives (the one k8s/auth/deployment.yaml is sized with); the logins beyond wait, then get 503."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from services.auth.hashing import memory_limit_mib

SETTINGS = dict(ARGON2_MAX_CONCURRENT=2, ARGON2_WAIT_SECONDS=1, ARGON2_MEMORY_KIB=65536, ARGON2_TIME_COST=3,
                ARGON2_PARALLELISM=4, GUNICORN_THREADS=8, LOGIN_MAX_FAILURES_PER_ADDRESS=1000)


def _worker_pid(master: int) -> int:
    (pid,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(pid)


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def _metric(metrics_url: str, name: str) -> float:
    for line in requests.get(f"{metrics_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def _wrong_login(base: str, i: int) -> requests.Response:
    # A different unknown account each: only the hashing places, no login limit, hold them back.
    return requests.post(f"{base}/login", auth=(f"flood{i}-{uuid.uuid4().hex[:8]}@example.com", "wrong-password-1"),
                         timeout=120)


def test_64_concurrent_logins_stay_under_the_memory_limit_of_the_settings(private):
    base, metrics = private("auth", **SETTINGS)
    worker = _worker_pid(private.procs[base].pid)
    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda i: _wrong_login(base, i), range(64)))
    peak = _status_mib(worker, "VmHWM")
    limit = memory_limit_mib(SETTINGS["ARGON2_MAX_CONCURRENT"], SETTINGS["ARGON2_MEMORY_KIB"])
    busy = [a for a in answers if a.status_code == 503]
    print(f"\n64 concurrent logins: worker VmHWM {peak:.0f} MiB (limit of the settings {limit} MiB); "
          f"{len(answers) - len(busy)} answered 401, {len(busy)} answered 503; "
          f"{_metric(metrics, 'auth_password_hash_queued_total'):.0f} waited for a place")
    assert peak < limit
    assert {a.status_code for a in answers} <= {401, 503}
    for answer in busy:
        assert answer.json()["error"]["code"] == "too_busy" and int(answer.headers["Retry-After"]) >= 1
    # With 8 request threads and 2 places, logins found the places taken: they waited, some then got 503.
    assert _metric(metrics, "auth_password_hash_queued_total") > 0
    assert _metric(metrics, 'auth_logins_total{result="too_busy"}') == len(busy)


@pytest.mark.parametrize("through", ["auth", "gateway"])
def test_a_registration_waiting_too_long_for_a_place_gets_503_too_busy(private, through):
    """Registration hashes too: with one place held by a slow hash and no wait allowed, the others are
    refused with auth's 503 too_busy and its Retry-After, relayed as they are by the gateway."""
    base, _ = private("auth", ARGON2_MAX_CONCURRENT=1, ARGON2_WAIT_SECONDS=0, ARGON2_TIME_COST=30,
                      REGISTER_MAX_PER_ADDRESS=1000)
    if through == "gateway":
        base = private("gateway", AUTH_URL=base, UPSTREAM_TIMEOUT_SECONDS=120)[0]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: requests.post(f"{base}/register", timeout=120, json={
            "email": f"reg{i}-{uuid.uuid4().hex[:8]}@example.com", "password": "a-good-password-42"}), range(8)))
    codes = sorted(a.status_code for a in answers)
    assert 201 in codes and 503 in codes and set(codes) <= {201, 503}, codes
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.json()["error"]["code"] == "too_busy" and refused.headers["Retry-After"] == "1"
