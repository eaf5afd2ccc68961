"""The whole local stack (`python -m services.devstack up`, as `make up` does) isolated for one run:
its own home folder, free ports, per-run queue and database names on the machine's shared RabbitMQ
and MariaDB, and its own MongoDB stand-in and SMTP server. Used by the test session and the bench.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from unittest import mock

from devkit.keys import new_private_pem
from devkit.net import free_port, wait_ready
from devkit.otlp import Receiver

ROOT = Path(__file__).resolve().parents[2]  # the repository: devkit is installed in place (editable)
PORT_NAMES = ("GATEWAY_PORT", "AUTH_PORT", "MONGO_LOCAL_PORT", "SMTP_PORT", "CONVERTER_METRICS_PORT",
              "NOTIFICATION_METRICS_PORT", "GATEWAY_METRICS_PORT", "AUTH_METRICS_PORT")
# Not inherited from the caller: the stack starts its own MongoDB and SMTP server, and its telemetry
# goes only where `otlp` and `settings` say.
NOT_INHERITED = ("MONGO_URI", "SMTP_HOST", "SENTRY_DSN")


class IsolatedStack:
    """`kind` ("test", "bench") prefixes the home folder; its initial and a run id prefix every name."""

    def __init__(self, kind: str, settings: dict[str, str] | None = None, otlp: Receiver | None = None):
        self.run_id = uuid.uuid4().hex[:8]
        tag = f"{kind[0]}{self.run_id}"
        self.home = Path(tempfile.mkdtemp(prefix=f"vid2mp3-{kind}-{self.run_id}-"))
        self.ports = {name: free_port() for name in PORT_NAMES}
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith("OTEL_")}
        self.env.update({k: str(v) for k, v in self.ports.items()})
        self.env.update({
            "VID2MP3_HOME": str(self.home),
            "VIDEO_QUEUE": f"{tag}.video", "MP3_QUEUE": f"{tag}.mp3", "WEBHOOK_QUEUE": f"{tag}.webhook",
            "MYSQL_DATABASE": f"vid2mp3_{tag}",
            "MONGO_VIDEOS_DB": f"{tag}_videos", "MONGO_MP3S_DB": f"{tag}_mp3s", "MONGO_JOBS_DB": f"{tag}_jobs",
            "JWT_PRIVATE_KEY": new_private_pem(),
            # Tests and benchmarks upload many jobs per user; quotas are tested on gateways of their own
            # (tests/integration/test_quotas.py).
            "USER_MAX_ACTIVE_JOBS": "1000", "USER_MAX_UPLOADS_PER_DAY": "100000",
            "LINK_SECRET": f"{kind}-link-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        })
        if otlp is not None:
            self.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{otlp.port}"
        self.env.update(settings or {})
        self.gateway = self.url("GATEWAY_PORT")
        self.auth = self.url("AUTH_PORT")
        self.mongo_uri = f"mongodb://127.0.0.1:{self.ports['MONGO_LOCAL_PORT']}"

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}"

    def devstack(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `services.devstack <command>` with this stack's environment; RuntimeError with its output on failure."""
        done = subprocess.run([sys.executable, "-m", "services.devstack", command], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"devstack {command} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def up(self, attempts: int = 1) -> None:
        """Start the stack; `up` starts only what is missing, so a further attempt revives a process that
        lost a start-up race."""
        for attempt in range(1, attempts + 1):
            try:
                self.devstack("up")
                return
            except RuntimeError as exc:
                if attempt == attempts:
                    raise
                print(f"stack start failed, retrying: {str(exc)[-300:]}", file=sys.stderr)

    def down(self) -> None:
        self.devstack("down")

    def pid(self, name: str) -> int:
        """The pid devstack recorded for one of its processes."""
        return int((self.home / "run" / f"{name}.pid").read_text())

    def drop_names(self) -> None:
        """Remove this run's queues and MySQL database from the machine's shared broker and MariaDB."""
        import pika
        import pymysql

        from services.common import config, messaging

        with mock.patch.dict(os.environ, self.env, clear=True):
            connection = pika.BlockingConnection(messaging.connection_parameters())
            channel = connection.channel()
            for base in (self.env["VIDEO_QUEUE"], self.env["MP3_QUEUE"], self.env["WEBHOOK_QUEUE"]):
                for name in [base, messaging.dead_queue(base)] + [messaging.retry_queue(base, d)
                                                                    for d in config.retry_delays()]:
                    channel.queue_delete(name)
            connection.close()
            conn = pymysql.connect(host=config.env("MYSQL_HOST"), port=config.env_int("MYSQL_PORT"),
                                   user=config.env("MYSQL_USER"), password=config.env("MYSQL_PASSWORD"))
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.env['MYSQL_DATABASE']}`")
            conn.close()

    def destroy(self) -> None:
        """Stop the stack, drop its names and remove its home (clean-up problems are reported, not raised)."""
        for step in (self.down, self.drop_names):
            try:
                step()
            except Exception as exc:  # clean-up must not hide the result
                print(f"clean-up incomplete ({step.__name__}): {exc}", file=sys.stderr)
        shutil.rmtree(self.home, ignore_errors=True)


def start_gateway(env: dict, args: list[str], extra_env: dict, log: Path) -> tuple[subprocess.Popen, str, str]:
    """A gateway process of its own on the stack that `env` names (MONGO_URI and AUTH_URL included):
    the process, its base URL and its metrics URL."""
    port, metrics_port = free_port(), free_port()
    env = dict(env, GATEWAY_PORT=str(port), GATEWAY_METRICS_PORT=str(metrics_port), OUTBOX_INTERVAL_SECONDS="0",
               OTEL_SERVICE_NAME="gateway", OTEL_TRACES_EXPORTER="none")
    env.update(extra_env)  # a test's settings win, tracing included
    proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "python:services.common.gunicorn_conf", *args,
                             "services.gateway:create_app()"], env=env, cwd=ROOT, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/healthz", "gateway", proc)
    return proc, base, f"http://127.0.0.1:{metrics_port}"


@contextmanager
def private_gateways(env: dict, settings: dict, log_dir: Path, count: int) -> Iterator[list[tuple[str, Path]]]:
    """`count` gateway processes of our own (start_gateway, with `settings` on top of `env`), started at
    once (their starts mostly wait): their (base URL, log path), stopped on exit."""
    logs = [log_dir / f"gateway-{n}.log" for n in range(count)]
    with ThreadPoolExecutor(count) as pool:
        starts = [pool.submit(start_gateway, env, [], settings, log) for log in logs]
    # every start has ended here: those that did are stopped even when another one failed
    started = [start.result() for start in starts if start.exception() is None]
    try:
        if len(started) < count:
            raise next(exc for start in starts if (exc := start.exception()) is not None)
        yield [(base, log) for (_, base, _), log in zip(started, logs, strict=True)]
    finally:
        for proc, _, _ in started:
            proc.terminate()
            proc.wait(30)
