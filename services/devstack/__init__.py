"""The local stack behind `make up` / `make down`: brokers and databases, then the four services.

    python -m services.devstack up | down | status

Idempotent: `up` starts only what is not running (so it also revives a crashed service);
`down` stops only what `up` started (tracked by pid files under $VID2MP3_HOME/run).
The machine's own RabbitMQ and MariaDB are started (or installed, as root) when missing,
and never stopped. Tests call `up()` with their own home, ports and names.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from services.common import config

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def home() -> Path:
    return (ROOT / config.env("VID2MP3_HOME")).resolve()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{', '.join(packages)} missing; install it (needs root) and run again")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


# ------------------------------------------------------------------ machine services (never stopped)


def ensure_rabbitmq() -> None:
    if not port_open("127.0.0.1", 5672):
        if not shutil.which("rabbitmq-server"):
            _apt_install("rabbitmq-server")
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        wait_for(lambda: port_open("127.0.0.1", 5672), "RabbitMQ on 127.0.0.1:5672", 90)
    # Queue-depth metrics for dashboards come from RabbitMQ's own plugin; the management API is what
    # the converter's KEDA trigger reads in Kubernetes (tests/deploy checks the quantity it counts).
    missing = not port_open("127.0.0.1", 15692) or not port_open("127.0.0.1", 15672)
    if missing and shutil.which("rabbitmq-plugins"):
        subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_prometheus", "rabbitmq_management"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_mariadb() -> None:
    if port_open("127.0.0.1", 3306):
        return
    if not Path("/usr/sbin/mariadbd").exists():
        _apt_install("mariadb-server")
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"],
                   check=False)
    wait_for(lambda: port_open("127.0.0.1", 3306), "MariaDB on 127.0.0.1:3306", 60)


# ------------------------------------------------------------------ processes we own


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready=None):
        self.name, self.argv, self.env, self.ready = name, argv, env, ready

    @property
    def pidfile(self) -> Path:
        return home() / "run" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return home() / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        # A recycled pid of some other program is not ours.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            # A process caught in the middle of exec() shows an empty cmdline for a moment.
            for _ in range(20):
                if cmdline:
                    break
                time.sleep(0.05)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        return pid if os.path.basename(self.argv[0]) in cmdline else None

    def start(self) -> bool:
        """Start unless running; True when it was started now."""
        if self.pid():
            return False
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
        self.pidfile.write_text(str(proc.pid))
        return True

    def stop(self, timeout: float = 20) -> bool:
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _local_secret(secret_file: Path) -> str:
    """A random secret kept in the local stack's home, so restarts keep tokens and links valid."""
    if not secret_file.exists():
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    return secret_file.read_text().strip()


def local_env() -> dict[str, str]:
    """The environment of every service: the caller's, plus local defaults for what it leaves open."""
    env = dict(os.environ)
    state = home()
    env.setdefault("MONGO_URI", f"mongodb://127.0.0.1:{config.env('MONGO_LOCAL_PORT')}")
    env.setdefault("AUTH_URL", f"http://127.0.0.1:{config.env('AUTH_PORT')}")
    env.setdefault("PUBLIC_URL", f"http://127.0.0.1:{config.env('GATEWAY_PORT')}")
    if not env.get("JWT_PRIVATE_KEY"):
        env["JWT_PRIVATE_KEY"] = _dev_signing_key(state / "jwt_private_key.pem")
    if not env.get("LINK_SECRET"):
        env["LINK_SECRET"] = _local_secret(state / "link_secret")
    # Local webhook receivers run on this machine; production allows public addresses only.
    env.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    env.setdefault("WORK_DIR", str(state / "work"))
    # Locally every client (curl, Locust, the tests) is 127.0.0.1: the per-address limit would bite at once.
    env.setdefault("REGISTER_MAX_PER_ADDRESS", "1000")
    if "GIT_SHA" not in env:  # build info of local processes names the commit they run
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        env["GIT_SHA"] = sha.stdout.strip() or "unknown"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _dev_signing_key(path: Path) -> str:
    """The local stack's Ed25519 signing key (PEM), made once and kept so tokens outlive a restart."""
    if not path.exists():
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(0o600)
        path.write_bytes(pem)
    return path.read_text().strip()


def processes() -> list[Process]:
    env = local_env()
    py, state = str(VENV_BIN / "python"), home()
    procs = []
    if "MONGO_URI" not in os.environ:
        procs.append(Process("mongodb", [str(VENV_BIN / "nx-27017"), "--data-dir", str(state / "mongo"),
                                         "--host", "127.0.0.1", "-p", config.env("MONGO_LOCAL_PORT"),
                                         "--log-file", str(state / "logs" / "mongodb-server.log"),
                                         "--pid-file", str(state / "run" / "nx.pid")], env))
    if "SMTP_HOST" not in os.environ:
        procs.append(Process("smtp", [str(VENV_BIN / "aiosmtpd"), "-n", "-l", f"127.0.0.1:{config.env('SMTP_PORT')}",
                                      "-c", "aiosmtpd.handlers.Mailbox", str(state / "mail")], env))
    gunicorn = str(VENV_BIN / "gunicorn")
    for name in ("auth", "gateway"):
        procs.append(Process(name, [gunicorn, "-c", "python:services.common.gunicorn_conf",
                                    "--name", f"vid2mp3-{name}", f"services.{name}:create_app()"],
                             dict(env, OTEL_SERVICE_NAME=name)))
    procs.append(Process("converter", [py, "-m", "services.converter"],
                         dict(env, OTEL_SERVICE_NAME="converter")))
    procs.append(Process("notification", [py, "-m", "services.notification"],
                         dict(env, OTEL_SERVICE_NAME="notification")))
    # A round every JANITOR_INTERVAL_SECONDS (a CronJob in Kubernetes); it shares the converter's WORK_DIR.
    procs.append(Process("janitor", [py, "-m", "services.janitor"], dict(env, OTEL_SERVICE_NAME="janitor")))
    return procs


def up(timeout: float = 90) -> dict[str, str]:
    ensure_rabbitmq()
    ensure_mariadb()
    state = home()
    for sub in ("mongo", "logs", "run", "work"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "new", "cur"):  # the SMTP server writes a Maildir
        (state / "mail" / sub).mkdir(parents=True, exist_ok=True)
    env = local_env()
    for proc in processes():
        if proc.start():
            print(f"started {proc.name} (log: {proc.logfile})")
        if proc.name == "mongodb":
            wait_for(lambda: port_open("127.0.0.1", int(config.env("MONGO_LOCAL_PORT"))), "MongoDB stand-in", 30)
        if proc.name == "smtp":
            wait_for(lambda: port_open("127.0.0.1", int(config.env("SMTP_PORT"))), "SMTP server", 30)
    gateway = env["PUBLIC_URL"]

    def ready() -> bool:
        dead = [proc.name for proc in processes() if proc.pid() is None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during start-up")
        try:
            return requests.get(f"http://127.0.0.1:{config.env('GATEWAY_PORT')}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(ready, "the gateway's /readyz", timeout)
    except RuntimeError:
        for proc in processes():
            if proc.pid() is None:
                print(f"{proc.name} is not running; last log lines:\n" + _tail(proc.logfile), file=sys.stderr)
        raise
    return {"gateway": gateway, "mail": str(state / "mail") if "SMTP_HOST" not in os.environ else env["SMTP_HOST"],
            "logs": str(state / "logs")}


def down() -> None:
    for proc in reversed(processes()):
        if proc.stop():
            print(f"stopped {proc.name}")


def status() -> int:
    missing = 0
    for proc in processes():
        pid = proc.pid()
        missing += pid is None
        print(f"{proc.name:13} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 1 if missing else 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "up":
        info = up()
        register_body = '{"email":"me@example.com","password":"correct horse battery"}'
        print(f"""
vid2mp3 is running.
  gateway:  {info['gateway']}   (API docs: {info['gateway']}/docs)
  mail:     {info['mail']}   (every email the system sends lands here, one file per message)
  logs:     {info['logs']}
Try it:
  curl -X POST {info['gateway']}/register -H 'Content-Type: application/json' -d '{register_body}'
  TOKEN=$(curl -s -u me@example.com:'correct horse battery' -X POST {info['gateway']}/login)
  curl -X POST {info['gateway']}/upload -H "Authorization: Bearer $TOKEN" -F "file=@video.mp4"
""")
        return 0
    if command == "down":
        down()
        return 0
    if command == "status":
        return status()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
