"""Private auth and gateway processes (gunicorn, as deployed) with chosen settings, for the security tests."""
from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
import requests

from devkit.net import free_port
from devkit.stack import ROOT


class Private:
    """`private(service, **settings)` starts one and returns (base URL, metrics URL); `private.stop(base)`
    stops it. AUTH_PORT/GATEWAY_PORT in the settings pick the port (a restart at the same address).
    auth gets its own database on the shared MariaDB unless given one."""

    def __init__(self, tmp_path_factory):
        self.tmp, self.procs, self.databases = tmp_path_factory, {}, set()

    def __call__(self, service: str, **settings) -> tuple[str, str]:
        prefix = service.upper()
        port, metrics_port = int(settings.pop(f"{prefix}_PORT", 0)) or free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
        env.update({"OTEL_SERVICE_NAME": service, "OTEL_TRACES_EXPORTER": "none", "OUTBOX_INTERVAL_SECONDS": "0",
                    f"{prefix}_PORT": str(port), f"{prefix}_METRICS_PORT": str(metrics_port)})
        env.update({k: str(v) for k, v in settings.items()})
        if service == "auth":
            env["MYSQL_DATABASE"] = settings.get("MYSQL_DATABASE", f"vid2mp3_sec_{uuid.uuid4().hex[:8]}")
            self.databases.add(env["MYSQL_DATABASE"])
        log = open(self.tmp.mktemp(service) / f"{service}.log", "wb")
        proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "python:services.common.gunicorn_conf",
                                 f"services.{service}:create_app()"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        base, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
        self.procs[base] = proc
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if (requests.get(f"{base}/healthz", timeout=2).status_code == 200
                        and requests.get(f"{metrics}/metrics", timeout=2).status_code == 200):
                    return base, metrics
            except requests.RequestException:
                pass
            assert proc.poll() is None, f"private {service} exited"
            time.sleep(0.3)
        raise AssertionError(f"private {service} did not become ready")

    def stop(self, base: str) -> None:
        proc = self.procs.pop(base)
        proc.terminate()
        proc.wait(30)

    def close(self) -> None:
        for base in list(self.procs):
            self.stop(base)
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", password="")
        with conn.cursor() as cur:
            for database in self.databases:
                cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    started = Private(tmp_path_factory)
    yield started
    started.close()
