"""Proof under fire: the whole system under normal load, hostile clients and faults, then judged
against its stored state.

    .venv/bin/python loadtest/soak.py [--minutes 20] [--users 6] [--seed N] [--out loadtest/soak/<timestamp>]
    make soak [SOAK_MINUTES=20]

It starts a private copy of the whole system (tests/devkit/privstack.py: its own RabbitMQ node,
MariaDB server, MongoDB stand-in, SMTP server and the services) and for `--minutes` runs at once:
* normal users (Locust, soak_locustfile.py) uploading clips with a webhook to a well-behaved
  receiver and following their jobs;
* hostile clients (soak_hostile.py): slow /register, /login and tus PATCH bodies, a tenant whose
  webhook receiver drips one byte every 3 s, wrong-password login bursts, made-up methods and paths;
* faults (soak_chaos.py): SIGKILL of a random service process every 30-90 s (restarted as
  Kubernetes would), one RabbitMQ restart and one MongoDB stand-in restart.
Then it waits for the jobs to settle, judges them (soak_verdicts.py) and writes <out>/report.md
with plots (soak_report.py). Exit code 0 only when every verdict passes.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika
import pymongo

import run as locust_run
import soak_report
import soak_verdicts
from devkit.client import Client
from devkit.media import make_media
from devkit.privstack import PrivateMariaDB, PrivateRabbit, PrivateStack, start_private_stack
from devkit.receiver import Receiver
from soak_chaos import Chaos
from soak_hostile import (DripReceiver, HostileTenant, JunkRequests, LoginFlood, SlowBodies, Timeline,
                          start_all, stop_all)

HERE = Path(__file__).resolve().parent

SLOW_BODIES = {"register": 20, "login": 10, "tus_patch": 6}  # connections kept open per route
SETTLE_SECONDS = 180  # after the load: for the last jobs to end and their emails and webhooks to go out
SAMPLE_SECONDS = 5


class Sampler:
    """Queue depth (ready messages of `video` and `mp3`) and jobs queued or converting, every few seconds."""

    def __init__(self, stack: PrivateStack):
        self.stack = stack
        self.samples: list[dict] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.mongo = pymongo.MongoClient(f"mongodb://127.0.0.1:{stack.ports['MONGO_LOCAL_PORT']}",
                                         serverSelectionTimeoutMS=1500)

    def _run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.samples.append({"at": time.time()} | self._queues() | self._active())

    def _queues(self) -> dict:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.stack.rabbit.url + "?socket_timeout=2"))
        except Exception:  # the broker is down (being restarted): a gap in the plot
            return {}
        try:
            channel = connection.channel()
            return {name: channel.queue_declare(name, passive=True).method.message_count for name in ("video", "mp3")}
        except Exception:
            return {}
        finally:
            if connection.is_open:
                connection.close()

    def _active(self) -> dict:
        try:
            return {"active": self.mongo["vid2mp3"].jobs.count_documents({"status": {"$in": ["queued", "converting"]}})}
        except Exception:  # MongoDB is down (being restarted)
            return {}


def accounts(stack: PrivateStack) -> dict[str, Client]:
    return {name: Client(stack.gateway).signed_up() for name in ("hostile", "victim")}


def start_locust(stack: PrivateStack, out: Path, seconds: float, users: int, jobs_file: Path,
                 webhook_url: str) -> subprocess.Popen:
    command = locust_run.locust_command(users, 2, f"{int(seconds)}s", stack.gateway, out,
                                        HERE / "soak_locustfile.py")
    env = dict(os.environ, SOAK_JOBS_FILE=str(jobs_file), SOAK_WEBHOOK_URL=webhook_url, LOADTEST_POLL_SECONDS="1")
    return subprocess.Popen(command, env=env, stdout=open(out / "stdout.txt", "wb"), stderr=subprocess.STDOUT)


def load(stack: PrivateStack, out: Path, minutes: float, users: int, seed: int, good: Receiver,
         drip: DripReceiver) -> dict:
    """Normal users, hostile clients and faults for `minutes`; what happened, for the verdicts and report."""
    seconds = minutes * 60
    people = accounts(stack)
    video = make_media(out / "hostile.mp4", seconds=2).read_bytes()
    timeline = Timeline()
    jobs_file = out / "accepted.jsonl"
    (out / "locust").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    slow = SlowBodies(stack.gateway, people["hostile"].token, people["victim"].email, SLOW_BODIES).start()
    locust = start_locust(stack, out / "locust", seconds, users, jobs_file, good.url)
    tenant = HostileTenant(stack.gateway, people["hostile"].token, drip.url, video, timeline)
    flood = LoginFlood(stack.gateway, [people["victim"].email, "nobody-here@example.com"], timeline)
    junk = JunkRequests(stack.gateway, timeline)
    chaos, sampler = Chaos(stack, seconds, random.Random(seed)), Sampler(stack)
    start_all(tenant, flood, junk, chaos, sampler)
    try:
        locust.wait(seconds + 120)
    finally:
        locust.kill()
        stop_all(tenant, flood, junk, chaos, sampler)
        opened = slow.stop()
    _ensure_running(stack)
    return {"t0": t0, "seconds": seconds, "faults": chaos.events, "samples": sampler.samples,
            "hostile_events": timeline.events, "tenant": tenant, "jobs_file": jobs_file,
            "hostile": {f"slow {name} bodies (connections opened)": n for name, n in opened.items()} |
            {name: timeline.counts(name) for name in ("hostile_upload", "login_flood", "junk")} |
            {"dripping receiver (webhook requests received / distinct webhook ids)":
             f"{len(drip.ids)} / {len({hook_id for _, hook_id in drip.ids})}"}}


def _ensure_running(stack: PrivateStack) -> None:
    """Whatever the last fault left down is started again before the verdicts read the state."""
    if stack.rabbit.proc is None:
        stack.rabbit.start()
    stack.up()


def settle_and_judge(stack: PrivateStack, run: dict, good: Receiver) -> dict:
    normal = [json.loads(line)["job_id"] for line in _lines(run["jobs_file"])]
    hostile = [job_id for job_id, _ in run["tenant"].accepted]
    docs = soak_verdicts.wait_settled(stack, normal + hostile, SETTLE_SECONDS)
    finished = {j for j, d in docs.items() if d.get("status") in soak_verdicts.FINAL}
    soak_verdicts.wait_until_counted(stack.mails, finished, 60)
    ids = lambda: soak_verdicts.webhook_ids(good.received)  # noqa: E731
    soak_verdicts.wait_until_counted(lambda: {j: len(v) for j, v in ids().items()}, finished & set(normal), 60)
    return soak_verdicts.judge(stack, normal, hostile, ids())


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def soak(minutes: float, users: int, seed: int, out: Path, command: str) -> tuple[dict, Path]:
    """The whole soak on a private stack that is removed afterwards: (judged, report path)."""
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="vid2mp3-soak-"))
    rabbit, mariadb = PrivateRabbit(base / "rabbitmq"), PrivateMariaDB(base / "mariadb")
    stack = None
    try:
        # Hostile clients come from addresses of their own: the per-address login limit is production's
        # again (privstack lifts it, for its tests all come from 127.0.0.1).
        stack = start_private_stack(base, rabbit, mariadb, {"LOGIN_MAX_FAILURES_PER_ADDRESS": "100"})
        with Receiver() as good, DripReceiver() as drip:
            run = load(stack, out, minutes, users, seed, good, drip)
            judged = settle_and_judge(stack, run, good)
        run.update(started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(run["t0"])), command=command,
                   minutes=minutes, users=users, seed=seed)
        (out / "figures.json").write_text(json.dumps({"figures": judged["figures"], "verdicts": judged["verdicts"],
                                                      "faults": run["faults"]}, indent=1, default=str))
        return judged, soak_report.write(out, run, judged)
    finally:
        if stack is not None:
            stack.devstack("down")
            if (stack.home / "logs").exists():
                shutil.copytree(stack.home / "logs", out / "logs", dirs_exist_ok=True)
        rabbit.stop()
        mariadb.stop()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES") or 20))
    parser.add_argument("--users", type=int, default=6, help="Locust users (normal users)")
    parser.add_argument("--seed", type=int, default=None, help="of the fault schedule (random when not given)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default loadtest/soak/<timestamp>)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    out = args.out or HERE / "soak" / time.strftime("%Y%m%d-%H%M%S")
    command = "python loadtest/soak.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    judged, report = soak(args.minutes, args.users, seed, out, command.strip())
    for name, ok in judged["verdicts"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(json.dumps(judged["figures"], default=str))
    print(f"report: {report}")
    return 0 if all(judged["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
