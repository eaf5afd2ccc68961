"""Test session set-up: every test run gets its own names on the machine's shared services.

Queues, the MySQL database and the MongoDB databases carry a per-run prefix; the local
stack (MongoDB stand-in, SMTP server and the four services) runs on free ports with its
own home folder, and is removed at the end. Nothing here is mocked.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = uuid.uuid4().hex[:8]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TEST_HOME = Path(tempfile.mkdtemp(prefix=f"vid2mp3-test-{RUN_ID}-"))
PORTS = {name: free_port() for name in
         ("GATEWAY_PORT", "AUTH_PORT", "MONGO_LOCAL_PORT", "SMTP_PORT", "CONVERTER_METRICS_PORT",
          "NOTIFICATION_METRICS_PORT", "GATEWAY_METRICS_PORT", "AUTH_METRICS_PORT")}

# The environment of the whole run: in-process code and the stack's processes read the same names.
STACK_ENV = {
    "VID2MP3_HOME": str(TEST_HOME),
    **{k: str(v) for k, v in PORTS.items()},
    "VIDEO_QUEUE": f"t{RUN_ID}.video",
    "MP3_QUEUE": f"t{RUN_ID}.mp3",
    "MYSQL_DATABASE": f"vid2mp3_t{RUN_ID}",
    "MONGO_VIDEOS_DB": f"t{RUN_ID}_videos",
    "MONGO_MP3S_DB": f"t{RUN_ID}_mp3s",
    "MONGO_JOBS_DB": f"t{RUN_ID}_jobs",
    "RETRY_DELAYS": "0.5,1,2",
    "JOB_LEASE_SECONDS": "6",
    "OUTBOX_INTERVAL_SECONDS": "1",
    "JWT_SECRET": "test-secret-" + uuid.uuid4().hex + uuid.uuid4().hex,
    "LOGIN_MAX_FAILURES": "5",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
    "LOGIN_LOCKOUT_SECONDS": "60",
    # every test client is 127.0.0.1 and many tests sign up; the limit itself is tested on private auths
    "REGISTER_MAX_PER_ADDRESS": "100000",
    "LOG_LEVEL": "INFO",
}
os.environ.update(STACK_ENV)
for name in ("MONGO_URI", "SMTP_HOST", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "SENTRY_DSN"):
    os.environ.pop(name, None)
# Every process of the stack exports its spans here, and Sentry (enabled, to prove it leaves the
# W3C propagation alone) posts its events here too.
from tests.otlp import Receiver  # noqa: E402

OTLP = Receiver()
os.environ.update({
    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{OTLP.port}",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "SENTRY_DSN": f"http://publickey@127.0.0.1:{OTLP.port}/1",
})
MONGO_URI = f"mongodb://127.0.0.1:{PORTS['MONGO_LOCAL_PORT']}"
GATEWAY = f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}"
AUTH = f"http://127.0.0.1:{PORTS['AUTH_PORT']}"


def _devstack(command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.devstack", command], cwd=ROOT,
                          env=env or dict(os.environ), capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="session")
def stack():
    """The whole local stack, started once for the run (as `make up` does, on this run's ports)."""
    started = _devstack("up")
    if started.returncode != 0:
        pytest.fail(f"local stack did not start:\n{started.stdout}\n{started.stderr}")
    # In-process tests share the stack's MongoDB from here on.
    os.environ["MONGO_URI"] = MONGO_URI
    yield {"gateway": GATEWAY, "auth": AUTH, "home": TEST_HOME, "mail": TEST_HOME / "mail" / "new",
           "logs": TEST_HOME / "logs", "otlp": OTLP,
           "metrics": {"gateway": f"http://127.0.0.1:{PORTS['GATEWAY_METRICS_PORT']}",
                       "auth": f"http://127.0.0.1:{PORTS['AUTH_METRICS_PORT']}",
                       "converter": f"http://127.0.0.1:{PORTS['CONVERTER_METRICS_PORT']}",
                       "notification": f"http://127.0.0.1:{PORTS['NOTIFICATION_METRICS_PORT']}"}}
    env = {k: v for k, v in os.environ.items() if k != "MONGO_URI"}
    _devstack("down", env)


def pytest_sessionstart(session):
    """The machine's RabbitMQ (with its Prometheus plugin) and MariaDB, started if they are not running."""
    from services import devstack

    devstack.ensure_rabbitmq()
    devstack.ensure_mariadb()
    devstack.wait_for(lambda: devstack.port_open("127.0.0.1", 15692), "RabbitMQ's Prometheus plugin", 60)


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's queues and database from the shared broker and MariaDB."""
    try:
        import pika
        import pymysql

        from services.common import config, messaging

        connection = pika.BlockingConnection(messaging.connection_parameters())
        channel = connection.channel()
        for base in (STACK_ENV["VIDEO_QUEUE"], STACK_ENV["MP3_QUEUE"]):
            for name in [base, messaging.dead_queue(base)] + [messaging.retry_queue(base, d)
                                                                for d in config.retry_delays()]:
                channel.queue_delete(name)
        connection.close()
        conn = pymysql.connect(host="127.0.0.1", user="root", password="")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{STACK_ENV['MYSQL_DATABASE']}`")
        conn.close()
    except Exception as exc:  # clean-up must not hide the test result
        print(f"clean-up incomplete: {exc}", file=sys.stderr)
