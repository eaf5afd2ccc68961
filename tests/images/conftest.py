"""The services as their images run them (tests/images/test_shipped.py says what differs from Kubernetes).

Each service gets a venv of its own lock and the project (tests/images/venvs.py), the command of its
Dockerfile stage, and the environment of its image and its Kubernetes container
(tests/images/shipped.py), with the local overrides of `local_overrides`. Processes run with a cwd
outside the repository and nothing of the caller's environment.
"""
from __future__ import annotations

import os
import secrets
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.images import shipped, venvs
from tests.images.process import LONG_RUNNING, Service
from devkit.keys import new_private_pem
from devkit.net import wait_ready
from devkit.otlp import Receiver
from devkit.stack import IsolatedStack

VENV_BIN = Path(sys.executable).parent
# per-run names on the machine's shared RabbitMQ, MariaDB and this run's MongoDB stand-in
RUN_NAMES = ("VIDEO_QUEUE", "MP3_QUEUE", "WEBHOOK_QUEUE", "MYSQL_DATABASE",
             "MONGO_VIDEOS_DB", "MONGO_MP3S_DB", "MONGO_JOBS_DB")


def dev_secrets() -> dict[str, str]:
    """kustomize/overlays/dev/secrets.env.example with real values for its placeholders."""
    values = shipped.read_env_file(shipped.SECRETS_EXAMPLE)
    values["JWT_PRIVATE_KEY"] = new_private_pem().strip().replace("\n", "\\n")  # one line, as the example says
    values["LINK_SECRET"] = secrets.token_urlsafe(48)
    return values


def local_overrides(service: str, env: dict[str, str], run: IsolatedStack, otlp: Receiver) -> dict[str, str]:
    """What must point at this machine (the module docstring of test_shipped.py lists them)."""
    ports = {key: str(port) for key, port in run.ports.items()}
    addresses = {
        "BIND_HOST": "127.0.0.1",
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "MONGO_URI": run.mongo_uri,
        "MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": "3306", "MYSQL_USER": "root", "MYSQL_PASSWORD": "",
        "AUTH_URL": run.auth, "PUBLIC_URL": run.gateway,
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": ports["SMTP_PORT"],
        "AUTH_PORT": ports["AUTH_PORT"], "AUTH_METRICS_PORT": ports["AUTH_METRICS_PORT"],
        "GATEWAY_PORT": ports["GATEWAY_PORT"], "GATEWAY_METRICS_PORT": ports["GATEWAY_METRICS_PORT"],
        "CONVERTER_METRICS_PORT": ports["CONVERTER_METRICS_PORT"],
        "NOTIFICATION_METRICS_PORT": ports["NOTIFICATION_METRICS_PORT"],
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.port}",
        "WORK_DIR": str(run.home / "work"),  # the converter's /work emptyDir
        "HOME": str(run.home / "tmp"),  # the pod's /tmp emptyDir
    }
    overrides = {key: value for key, value in addresses.items() if key in env}
    overrides.update({key: run.env[key] for key in RUN_NAMES})
    overrides["TMPDIR"] = str(run.home / "tmp")
    overrides["PYTHONVERBOSE"] = "1"  # the import trace on stderr shows where every module came from
    return overrides


def service_env(service: str, venv: Path, secret_values: dict, run: IsolatedStack, otlp: Receiver) -> dict:
    env = shipped.image_env(service, venv)
    env.update(shipped.k8s_env(service, secret_values))
    env.update(local_overrides(service, env, run, otlp))
    return env


@pytest.fixture(scope="module")
def run():
    """Free ports, per-run names and a home folder (outside the repository) for this run."""
    names = IsolatedStack("images")
    for sub in ("tmp", "work", "mongo", "mail/new", "mail/cur", "mail/tmp", "cwd"):
        (names.home / sub).mkdir(parents=True, exist_ok=True)
    yield names
    # the services' retry queues are named after their delays (the same in both workers' config.env)
    names.env["RETRY_DELAYS"] = shipped.read_env_file(shipped.ROOT / "k8s/converter/config.env")["RETRY_DELAYS"]
    try:
        names.drop_names()
    except Exception as exc:  # clean-up must not hide the result
        print(f"clean-up incomplete: {exc}", file=sys.stderr)
    shutil.rmtree(names.home, ignore_errors=True)


@pytest.fixture(scope="module")
def image_venvs(run) -> dict[str, Path]:
    """service -> this run's venv of its image."""
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:  # pip waits on I/O part of the time
        built = {name: pool.submit(venvs.run_venv, name, run.home / "venvs" / name, run.home)
                 for name in shipped.SERVICES}
    return {name: future.result() for name, future in built.items()}


@pytest.fixture(scope="module")
def otlp() -> Receiver:
    return Receiver()


@pytest.fixture(scope="module")
def backing(run):
    """The MongoDB stand-in and an SMTP server writing a Maildir, on this run's ports."""
    mongo = Service("mongodb", {"PATH": os.environ["PATH"]}, run.home / "cwd",
                    [str(VENV_BIN / "nx-27017"), "--data-dir", str(run.home / "mongo"), "--host", "127.0.0.1",
                     "-p", str(run.ports["MONGO_LOCAL_PORT"])]).start()
    smtp = Service("smtp", {"PATH": os.environ["PATH"]}, run.home / "cwd",
                   [str(VENV_BIN / "aiosmtpd"), "-n", "-l", f"127.0.0.1:{run.ports['SMTP_PORT']}",
                    "-c", "aiosmtpd.handlers.Mailbox", str(run.home / "mail")]).start()
    from services import devstack

    try:
        for port, what in ((run.ports["MONGO_LOCAL_PORT"], "MongoDB stand-in"), (run.ports["SMTP_PORT"], "SMTP")):
            devstack.wait_for(lambda port=port: devstack.port_open("127.0.0.1", port), what, 30)
        yield {"maildir": run.home / "mail" / "new"}
    finally:
        smtp.stop()
        mongo.stop()


@pytest.fixture(scope="module")
def envs(run, image_venvs, otlp) -> dict[str, dict[str, str]]:
    """service -> the environment it runs with."""
    secret_values = dev_secrets()
    return {name: service_env(name, image_venvs[name], secret_values, run, otlp) for name in shipped.SERVICES}


@pytest.fixture(scope="module")
def services(run, image_venvs, envs, backing) -> dict[str, Service]:
    """The four long-running services, each started as its image starts it and ready."""
    started = {name: Service(name, envs[name], run.home / "cwd").start() for name in LONG_RUNNING}
    try:
        for service in started.values():
            wait_ready(service.url("/readyz"), service.name, service.proc, timeout=60)
    except RuntimeError as exc:
        for service in started.values():
            service.stop()
        pytest.fail(f"{exc}\n" + "\n".join(f"--- {s.name}\n{s.logs()}" for s in started.values()))
    yield started
    for service in started.values():
        service.stop()
