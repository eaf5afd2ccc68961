"""Login brute force is limited per account and per client address (with Retry-After), and an unknown
user cannot be told from a wrong password by timing."""
from __future__ import annotations

import os
import statistics
import subprocess
import time
import uuid

import pytest
import requests

from tests.helpers import Client
from tests.support.net import free_port, wait_ready
from tests.support.stack import ROOT


@pytest.fixture(scope="module")
def private_auth(tmp_path_factory):
    """Start auth processes of our own (on the shared MariaDB, own database) with chosen login limits."""
    started = []

    def start(**limits):
        port = free_port()
        env = dict(os.environ, OTEL_SERVICE_NAME="auth", AUTH_PORT=str(port),
                   MYSQL_DATABASE=f"vid2mp3_sec_{uuid.uuid4().hex[:8]}", OTEL_TRACES_EXPORTER="none", **{k: str(v) for k, v in limits.items()})
        env.pop("SENTRY_DSN", None)
        log = open(tmp_path_factory.mktemp("auth") / "auth.log", "wb")
        proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "python:services.common.gunicorn_conf",
                                 "services.auth:create_app()"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        started.append((proc, env["MYSQL_DATABASE"]))
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", "private auth", proc)
        return base

    yield start
    import pymysql

    for proc, database in started:
        proc.terminate()
        proc.wait(30)
        conn = pymysql.connect(host="127.0.0.1", user="root", password="")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


def _login(base, email, password, address=None):
    headers = {"X-Client-Address": address} if address else {}
    return requests.post(f"{base}/login", auth=(email, password), headers=headers, timeout=10)


def test_login_is_rate_limited_per_account(stack):
    victim = Client(stack["gateway"]).signed_up()
    answers = [_login(stack["gateway"], victim.email, "wrong-password-x").status_code for _ in range(5)]
    assert answers == [401] * 5
    blocked = _login(stack["gateway"], victim.email, victim.password)  # even the right password now
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "too_many_attempts"
    assert 0 < int(blocked.headers["Retry-After"]) <= 61
    # Another account from the same address is not affected.
    other = Client(stack["gateway"]).signed_up()
    assert _login(stack["gateway"], other.email, other.password).status_code == 200


def test_login_is_rate_limited_per_client_address(private_auth):
    base = private_auth(LOGIN_MAX_FAILURES=100, LOGIN_MAX_FAILURES_PER_ADDRESS=3, LOGIN_LOCKOUT_SECONDS=60)
    user = Client(base).signed_up()
    attacker = "203.0.113.77"
    for i in range(3):  # a different account each time: only the address ties them together
        assert _login(base, f"nobody{i}-{uuid.uuid4().hex[:6]}@example.com", "guess-guess-1", attacker).status_code == 401
    blocked = _login(base, user.email, user.password, attacker)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert _login(base, user.email, user.password, "198.51.100.5").status_code == 200


def test_unknown_user_and_wrong_password_take_the_same_time(private_auth):
    base = private_auth(LOGIN_MAX_FAILURES=1000, LOGIN_MAX_FAILURES_PER_ADDRESS=1000)
    user = Client(base).signed_up()
    session = requests.Session()
    unknown, wrong = [], []
    for i in range(16):
        for bucket, email in ((unknown, f"ghost-{uuid.uuid4().hex[:8]}@example.com"), (wrong, user.email)):
            started = time.perf_counter()
            response = session.post(f"{base}/login", auth=(email, f"not-the-password-{i}"), timeout=10)
            bucket.append(time.perf_counter() - started)
            assert response.status_code == 401
    a, b = statistics.median(unknown[1:]), statistics.median(wrong[1:])
    print(f"\nlogin timing medians: unknown user {a * 1000:.1f} ms, wrong password {b * 1000:.1f} ms")
    assert abs(a - b) / max(a, b) < 0.30, (a, b)
