"""Test session set-up: every test run gets its own names on the machine's shared services.

Queues, the MySQL database and the MongoDB databases carry a per-run prefix; the local
stack (MongoDB stand-in, SMTP server and the four services) runs on free ports with its
own home folder (tests/devkit/stack.py), and is stopped at the end. Nothing here is mocked.
"""
from __future__ import annotations

import os
import sys

import pytest

from devkit.otlp import Receiver
from devkit.stack import IsolatedStack

# Every process of the stack exports its spans here, and Sentry (enabled, to prove it leaves the
# W3C propagation alone) posts its events here too.
OTLP = Receiver()
STACK = IsolatedStack("test", otlp=OTLP, settings={
    "RETRY_DELAYS": "0.5,1,2",
    "JOB_LEASE_SECONDS": "6",
    "OUTBOX_INTERVAL_SECONDS": "1",
    "JANITOR_INTERVAL_SECONDS": "86400",  # one round at start (the storage metrics); tests run their own
    "LOGIN_MAX_FAILURES": "5",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
    "LOGIN_LOCKOUT_SECONDS": "60",
    # every test client is 127.0.0.1 and many tests sign up; the limit itself is tested on private auths
    "REGISTER_MAX_PER_ADDRESS": "100000",
    "LOG_LEVEL": "INFO",
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the tests' webhook receivers listen on 127.0.0.1
    "WEBHOOK_TIMEOUT_SECONDS": "2",
    # URL imports fetch from the tests' servers on 127.0.0.1 only: 127.0.0.2 stands for a forbidden address
    "IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32",
    "IMPORT_TIMEOUT_SECONDS": "5",
    "IMPORT_STALL_SECONDS": "2",
    # an hour of WAV passes it (tests/e2e/test_output_limits.py); no other test's result
    "MAX_OUTPUT_BYTES": "300000000",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "SENTRY_DSN": f"http://publickey@127.0.0.1:{OTLP.port}/1",
})
# The environment of the whole run: in-process code and the stack's processes read the same names.
STACK_ENV, PORTS, TEST_HOME = STACK.env, STACK.ports, STACK.home
os.environ.clear()
os.environ.update(STACK_ENV)
GATEWAY, AUTH, MONGO_URI = STACK.gateway, STACK.auth, STACK.mongo_uri


@pytest.fixture(scope="session")
def stack():
    """The whole local stack, started once for the run (as `make up` does, on this run's ports)."""
    try:
        STACK.up()
    except RuntimeError as exc:
        STACK.down()  # what did start must not outlive the run
        pytest.fail(f"local stack did not start:\n{exc}")
    # In-process tests share the stack's MongoDB from here on.
    os.environ["MONGO_URI"] = MONGO_URI
    yield {"gateway": GATEWAY, "auth": AUTH, "home": TEST_HOME, "mail": TEST_HOME / "mail" / "new",
           "logs": TEST_HOME / "logs", "otlp": OTLP,
           "metrics": {"gateway": STACK.url("GATEWAY_METRICS_PORT"), "auth": STACK.url("AUTH_METRICS_PORT"),
                       "converter": STACK.url("CONVERTER_METRICS_PORT"),
                       "notification": STACK.url("NOTIFICATION_METRICS_PORT")}}
    STACK.down()


@pytest.fixture(scope="session")
def ten_minute_video(tmp_path_factory):
    """A real 10-minute video (small picture, so it is quick to make; the audio is what counts): long
    enough to catch a job queued or converting. Made once per run for every test that needs one."""
    from devkit.media import make_media

    return make_media(tmp_path_factory.mktemp("long") / "lecture.mp4", seconds=600,
                      video="testsrc=size=160x120:rate=5")


def pytest_sessionstart(session):
    """The machine's RabbitMQ (with its Prometheus plugin) and MariaDB, started if they are not running."""
    from services import devstack

    devstack.ensure_rabbitmq()
    devstack.ensure_mariadb()
    devstack.wait_for(lambda: devstack.port_open("127.0.0.1", 15692), "RabbitMQ's Prometheus plugin", 60)


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's queues and database from the shared broker and MariaDB (the home stays for its logs)."""
    try:
        STACK.drop_names()
    except Exception as exc:  # clean-up must not hide the test result
        print(f"clean-up incomplete: {exc}", file=sys.stderr)
