"""A private copy of the whole system for fault tests: its own RabbitMQ node, MariaDB server,
MongoDB stand-in, SMTP server and the four services, on free ports under one temp folder.

The machine's shared broker and database are never touched: this stack is what the tests
kill, stop and restart. Everything is a real process.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pymongo
import requests

from devkit.client import Client
from devkit.keys import new_private_pem
from devkit.media import unique_mp4
from devkit.net import free_port
from devkit.stack import ROOT

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the real scripts (the /usr/sbin wrappers su to the rabbitmq user)


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, what: str, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # the thing we wait for may raise until it is up
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def cmdline(pid: int) -> str:
    """A process's arguments, NUL-separated ("" once it is gone)."""
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        return ""


class PrivateRabbit:
    """One RabbitMQ node of our own (foreground process), restartable on the same data."""

    def __init__(self, base: Path):
        self.base = base
        self.node = f"vid2mp3test-{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        base.mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def env(self) -> dict:
        b = str(self.base)
        return dict(os.environ, HOME=b, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                    RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_DIST_PORT=str(self.dist_port),
                    RABBITMQ_MNESIA_BASE=f"{b}/mnesia", RABBITMQ_LOG_BASE=f"{b}/log",
                    RABBITMQ_ENABLED_PLUGINS_FILE=f"{b}/enabled_plugins", RABBITMQ_CONFIG_FILE=f"{b}/rabbitmq",
                    RABBITMQ_ADVANCED_CONFIG_FILE=f"{b}/advanced.config", RABBITMQ_FEATURE_FLAGS_FILE=f"{b}/ff",
                    RABBITMQ_PLUGINS_EXPAND_DIR=f"{b}/plugins-expand", RABBITMQ_PID_FILE=f"{b}/pid")

    def start(self, timeout: float = 60) -> None:
        if not (RABBIT_BIN / "rabbitmq-server").exists():
            raise AssertionError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        log = open(self.base / "server.out", "ab")
        self.proc = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env(), cwd=self.base,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_until(lambda: self.proc.poll() is None and port_open(self.port) and self._amqp_ok(),
                   f"private RabbitMQ {self.node}", timeout, 0.3)

    def _amqp_ok(self) -> bool:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        connection.close()
        return True

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env(),
                              capture_output=True, text=True, timeout=60, check=check)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.ctl("stop", check=False)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Erlang helpers (epmd is the machine's; inet_gethost etc. are ours) go with the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc = None

    def channel(self):
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        return connection, connection.channel()


class PrivateMariaDB:
    """A MariaDB server of our own on a temp datadir; root with an empty password over TCP."""

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        base.mkdir(parents=True, exist_ok=True)
        if not Path("/usr/sbin/mariadbd").exists() or not shutil.which("mariadb-install-db"):
            raise AssertionError("MariaDB is not installed (apt-get install mariadb-server)")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={base}/data", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self, timeout: float = 60) -> None:
        b = self.base
        log = open(b / "server.out", "ab")
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={b}/data", f"--socket={b}/sock",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root", f"--pid-file={b}/pid",
             f"--log-error={b}/error.log", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
             "--skip-name-resolve", "--innodb-log-file-size=8M"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: self.proc.poll() is None and self._sql_ok(), "private MariaDB", timeout)

    def _sql_ok(self) -> bool:
        import pymysql

        pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", connect_timeout=2).close()
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


SLOW_WRAPPER = """#!/bin/sh
# Fault-test wrapper: waits the number of seconds in {delay_file} (0 when absent), then runs the real tool.
d=$(cat "{delay_file}" 2>/dev/null || echo 0)
[ "$d" = 0 ] || sleep "$d"
exec {real} "$@"
"""


class PrivateStack:
    """The four services (plus MongoDB stand-in and SMTP) started by `services.devstack`,
    on the private broker and DB."""

    def __init__(self, base: Path, rabbit: PrivateRabbit, mariadb: PrivateMariaDB):
        self.base, self.rabbit, self.mariadb = base, rabbit, mariadb
        self.home = base / "home"
        self.ports = {name: free_port() for name in ("GATEWAY_PORT", "AUTH_PORT", "MONGO_LOCAL_PORT", "SMTP_PORT",
                                                     "CONVERTER_METRICS_PORT", "NOTIFICATION_METRICS_PORT",
                                                     "GATEWAY_METRICS_PORT", "AUTH_METRICS_PORT")}
        tools = base / "tools"
        tools.mkdir(parents=True, exist_ok=True)
        self.delay_files = {}
        for tool in ("ffmpeg",):
            real = shutil.which(tool)
            if not real:
                raise AssertionError(f"{tool} is not installed (apt-get install ffmpeg)")
            self.delay_files[tool] = tools / f"{tool}.delay"
            wrapper = tools / f"slow-{tool}"
            wrapper.write_text(SLOW_WRAPPER.format(delay_file=self.delay_files[tool], real=real))
            wrapper.chmod(0o755)
        env = {k: v for k, v in os.environ.items()
               if k not in ("MONGO_URI", "SMTP_HOST", "OTEL_EXPORTER_OTLP_ENDPOINT", "SENTRY_DSN")}
        env.update({k: str(v) for k, v in self.ports.items()})
        env.update({
            "VID2MP3_HOME": str(self.home),
            "RABBITMQ_URL": rabbit.url,
            "MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(mariadb.port), "MYSQL_USER": "root", "MYSQL_PASSWORD": "",
            "MYSQL_DATABASE": "vid2mp3_faults",
            "VIDEO_QUEUE": "video", "MP3_QUEUE": "mp3",
            "MONGO_VIDEOS_DB": "videos", "MONGO_MP3S_DB": "mp3s", "MONGO_JOBS_DB": "vid2mp3",
            "MONGO_TIMEOUT_MS": "1500",
            "RETRY_DELAYS": "1,2,4,8,16",
            "JOB_LEASE_SECONDS": "4",
            "OUTBOX_INTERVAL_SECONDS": "1",
            # The stack's janitor does its round at start only: the tests run their own rounds, and a
            # periodic one in the middle of a test would clean up what the test is about to look at.
            "JANITOR_INTERVAL_SECONDS": "86400",
            "AMQP_HEARTBEAT_SECONDS": "10",
            "OTEL_TRACES_EXPORTER": "none",
            "FFMPEG_BINARY": str(tools / "slow-ffmpeg"),
            "JWT_PRIVATE_KEY": new_private_pem(),
            "LOGIN_MAX_FAILURES": "5", "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000", "REGISTER_MAX_PER_ADDRESS": "100000",
            "UPSTREAM_TIMEOUT_SECONDS": "5",
            # One user keeps many jobs in flight here; quotas have their tests (tests/integration/test_quotas.py).
            "USER_MAX_ACTIVE_JOBS": "1000", "USER_MAX_UPLOADS_PER_DAY": "100000",
            "LOG_LEVEL": "INFO",
        })
        self.env = env
        self.gateway = f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}"
        self.auth = f"http://127.0.0.1:{self.ports['AUTH_PORT']}"
        self.converter_http = f"http://127.0.0.1:{self.ports['CONVERTER_METRICS_PORT']}"
        self.notification_http = f"http://127.0.0.1:{self.ports['NOTIFICATION_METRICS_PORT']}"
        self.maildir = self.home / "mail" / "new"
        self._mongo: pymongo.MongoClient | None = None

    # ---- lifecycle through the project's own tool
    def devstack(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "services.devstack", command], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if command == "up" and done.returncode != 0:
            tails = "\n".join(f"--- {name}.log:\n" + "\n".join(self.log(name).splitlines()[-12:])
                              for name in ("converter", "notification", "gateway", "auth"))
            raise AssertionError(f"devstack up failed:\n{done.stdout}\n{done.stderr}\n{tails}")
        return done

    def up(self) -> None:
        self.devstack("up")

    def pid(self, name: str) -> int | None:
        try:
            pid = int((self.home / "run" / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def kill(self, name: str, sig: int = signal.SIGKILL, group: bool = True) -> int:
        """Signal a service; with `group`, its children (ffmpeg) too, as a container's death would."""
        pid = self.pid(name)
        assert pid, f"{name} is not running"
        (os.killpg if group else os.kill)(pid, sig)
        return pid

    def terminate(self, name: str, grace: float) -> int:
        """Stop a service as an orchestrator does: SIGTERM, then SIGKILL once `grace` seconds passed (the
        MongoDB stand-in's exit waits for the SQLite work its threads have in hand, which a loaded machine
        has once taken past 20 s). Returns the pid, gone."""
        pid = self.kill(name, signal.SIGTERM)
        try:
            self.wait_exit(pid, grace)
        except AssertionError:
            os.killpg(pid, signal.SIGKILL)
            self.wait_exit(pid, 10)
        return pid

    def wait_exit(self, pid: int, timeout: float) -> float:
        started = time.monotonic()
        wait_until(lambda: not pid_alive(pid), f"pid {pid} to exit", timeout, 0.1)
        return time.monotonic() - started

    def set_delay(self, tool: str, seconds: float) -> None:
        self.delay_files[tool].write_text(f"{seconds}\n")

    def log(self, name: str) -> str:
        try:
            return (self.home / "logs" / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    # ---- state, read straight from the private MongoDB
    @property
    def mongo(self) -> pymongo.MongoClient:
        if self._mongo is None:
            self._mongo = pymongo.MongoClient(f"mongodb://127.0.0.1:{self.ports['MONGO_LOCAL_PORT']}",
                                              serverSelectionTimeoutMS=3000)
        return self._mongo

    def jobs(self):
        return self.mongo["vid2mp3"].jobs

    def job(self, job_id: str) -> dict | None:
        return self.jobs().find_one({"_id": job_id})

    def mp3_files(self) -> list[dict]:
        # The stand-in hands 24-hex string ids back as ObjectIds: compare as text.
        return [dict(f, _id=str(f["_id"])) for f in
                self.mongo["mp3s"].fs.files.find({}, {"_id": 1, "metadata": 1, "length": 1})]

    def wait_final(self, job_ids: list[str], timeout: float) -> dict[str, dict]:
        def finished():
            docs = {d["_id"]: d for d in self.jobs().find({"_id": {"$in": list(job_ids)}})}
            return docs if len(docs) == len(job_ids) and all(
                d["status"] in ("done", "failed") for d in docs.values()) else None

        try:
            return wait_until(finished, f"{len(job_ids)} jobs to finish", timeout, 0.3)
        except AssertionError:
            docs = {d["_id"]: d for d in self.jobs().find({"_id": {"$in": list(job_ids)}})}
            states = {j: (docs.get(j) or {}).get("status") for j in job_ids}
            raise AssertionError(f"jobs not finished after {timeout} s: {states}\n--- converter log tail:\n"
                                 + "\n".join(self.log("converter").splitlines()[-30:])) from None

    def mails(self) -> dict[str, int]:
        import email
        import email.policy

        counts: dict[str, int] = {}
        for path in self.maildir.glob("*") if self.maildir.exists() else []:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            job = message["X-Vid2mp3-Job"]
            counts[job] = counts.get(job, 0) + 1
        return counts

    def wait_mails(self, job_ids: list[str], timeout: float) -> dict[str, int]:
        def arrived():
            mails = self.mails()
            return mails if all(mails.get(j) for j in job_ids) else None

        return wait_until(arrived, f"emails for {len(job_ids)} jobs", timeout, 0.3)

    def figures(self, scenario: str, job_ids: list[str], rejected: int = 0, expect_failed: int = 0,
                timeout: float = 90) -> dict:
        """Wait for every accepted job, then count outcomes, MP3 files and emails: the issue's invariants."""
        docs = self.wait_final(job_ids, timeout)
        mails = self.wait_mails(job_ids, 45)
        time.sleep(1.5)  # a duplicate would arrive now
        mails = self.mails()
        files = self.mp3_files()
        per_job: dict[str, int] = {}  # result files (a job's peaks files, kind "waveform", are not counted)
        for f in files:
            if (f.get("metadata") or {}).get("kind") == "waveform":
                continue
            file_job = (f.get("metadata") or {}).get("job_id")
            per_job[file_job] = per_job.get(file_job, 0) + 1
        done = [j for j in job_ids if docs[j]["status"] == "done"]
        failed = [j for j in job_ids if docs[j]["status"] == "failed" and docs[j].get("reason")]
        lost = [j for j in job_ids if j not in done and j not in failed]
        # A job stores one file per result (several outputs, split=chapters).
        expected = {j: len(docs[j].get("results") or []) or 1 for j in job_ids}
        dup_files = [j for j in job_ids if per_job.get(j, 0) > expected[j]]
        missing_files = [j for j in done if per_job.get(j, 0) != expected[j]
                         or not any(f["_id"] == str(docs[j]["mp3_id"]) for f in files)]
        dup_mails = [j for j in job_ids if mails.get(j, 0) > 1]
        no_mail = [j for j in job_ids if mails.get(j, 0) == 0]
        done_ids = {str(docs[j]["mp3_id"]) for j in done}
        all_done_ids = set()
        for d in self.jobs().find({"status": "done"}, {"mp3_id": 1, "results": 1}):
            all_done_ids.add(str(d["mp3_id"]))
            for result in d.get("results") or []:
                all_done_ids.update(str(result[key]) for key in ("mp3_id", "waveform_id") if result.get(key))
        orphans = [f["_id"] for f in files if f["_id"] not in all_done_ids]
        result = {
            "scenario": scenario, "submitted": len(job_ids) + rejected, "accepted": len(job_ids),
            "rejected_503": rejected, "completed": len(done), "failed_with_reason": len(failed),
            "lost": len(lost) + len(missing_files) + len(no_mail),
            "duplicated": len(dup_files) + len(dup_mails), "orphan_mp3s": len(orphans),
        }
        record_figures(self.home, result)
        assert not lost, f"{scenario}: jobs neither done nor failed-with-reason: {lost}"
        assert not missing_files, (f"{scenario}: done jobs without exactly one stored MP3: {missing_files}; "
                                   f"files {files}; jobs {[(j, docs[j].get('mp3_id')) for j in job_ids]}")
        assert not no_mail, f"{scenario}: jobs without an email: {no_mail}"
        assert not dup_files and not dup_mails, f"{scenario}: duplicated MP3s {dup_files} / emails {dup_mails}"
        assert not orphans, f"{scenario}: MP3 files that belong to no done job: {orphans}"
        assert len(failed) == expect_failed, f"{scenario}: {len(failed)} failed, expected {expect_failed}: " + \
            str({j: docs[j].get('reason') for j in failed})
        assert done_ids <= {f["_id"] for f in files}
        return result

    # ---- the public API
    def client(self) -> Client:
        return Client(self.gateway).signed_up()


def start_private_stack(base: Path, rabbit: PrivateRabbit, mariadb: PrivateMariaDB,
                        settings: dict | None = None) -> PrivateStack:
    """Start the private broker, database and whole system under `base` (shared by the fault tests and the soak)."""
    rabbit.start()
    mariadb.start()
    stack = PrivateStack(base, rabbit, mariadb)
    stack.env.update(settings or {})
    try:
        stack.up()
    except AssertionError as exc:
        # Free ports are picked before the services bind them; another run on the machine can take
        # one in between. One more `up` (idempotent) starts only what is missing.
        print(f"first start failed, retrying once:\n{exc}")
        stack.up()
    return stack


FIGURES: list[dict] = []


def record_figures(home: Path, result: dict) -> None:
    FIGURES.append(result)
    line = format_figures(result)
    print("\n" + line)
    with open(home / "fault-figures.txt", "a") as out:
        out.write(line + "\n")


HEADER = (f"{'scenario':32} {'submitted':>9} {'accepted':>8} {'503':>4} {'completed':>9} {'failed+reason':>13} "
          f"{'lost':>4} {'duplicated':>10} {'orphan_mp3':>10}")


def format_figures(r: dict) -> str:
    return (f"{r['scenario']:32} {r['submitted']:>9} {r['accepted']:>8} {r['rejected_503']:>4} {r['completed']:>9} "
            f"{r['failed_with_reason']:>13} {r['lost']:>4} {r['duplicated']:>10} {r['orphan_mp3s']:>10}")


def upload_bytes(base: str, token: str, data: bytes, name: str = "video.mp4", timeout: float = 60) -> requests.Response:
    if data[4:8] == b"ftyp":  # an MP4: made unique with a `free` box, so every upload really converts (no dedup)
        data = unique_mp4(data)
    return requests.post(f"{base}/upload", headers={"Authorization": f"Bearer {token}"},
                         files={"file": (name, data)}, timeout=timeout)
