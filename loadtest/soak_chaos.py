"""The faults of the soak: SIGKILL of a random service process every 30-90 s (gateway, auth, converter,
notification, or the converter's ffmpeg child), one RabbitMQ restart and one MongoDB stand-in restart.

A killed service is started again by the harness (`devstack up` starts only what is missing), as
Kubernetes restarts a container whose process died. Every fault is recorded with its time.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time

from devkit.privstack import PrivateStack, children_of, cmdline, pid_alive

TARGETS = ("gateway", "auth", "converter", "notification", "ffmpeg")
RESTART_PAUSE = 2.0  # seconds between a death and its restart: a kubelet's first back-off is longer still


def schedule(seconds: float, rng: random.Random, gap: tuple[float, float] = (30, 90)) -> list[tuple[float, str]]:
    """(offset, action): kills at random gaps, the broker restart at 35 % and MongoDB's at 65 % of the run."""
    plan = [(0.35 * seconds, "restart rabbitmq"), (0.65 * seconds, "restart mongodb")]
    at = rng.uniform(*gap)
    while at < seconds:
        plan.append((at, f"kill {rng.choice(TARGETS)}"))
        at += rng.uniform(*gap)
    return sorted(plan)


class Chaos:
    def __init__(self, stack: PrivateStack, seconds: float, rng: random.Random):
        self.stack, self.rng = stack, rng
        self.plan = schedule(seconds, rng)
        self.events: list[dict] = []  # what was done: at, action, pid, outcome, back (seconds until ready)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        for offset, action in self.plan:
            if self.stopped.wait(max(0.0, started + offset - time.monotonic())):
                return
            at = time.time()
            try:
                event = self._do(action)
            except Exception as exc:  # a fault that could not be applied is reported, the soak goes on
                event = {"outcome": f"error: {type(exc).__name__}: {str(exc)[:300]}"}
            self.events.append(dict(event, at=at, action=action))
            print(f"chaos: {action}: {event}", flush=True)

    def _do(self, action: str) -> dict:
        verb, target = action.split()
        if verb == "kill" and target == "ffmpeg":
            return self._kill_ffmpeg()
        if verb == "kill":
            return self._kill_service(target)
        if target == "rabbitmq":
            return self._restart_rabbitmq()
        return self._restart_mongodb()

    def _kill_service(self, name: str) -> dict:
        pid = self.stack.kill(name, signal.SIGKILL)  # the process group: ffmpeg dies with its converter
        self.stack.wait_exit(pid, 15)
        return {"pid": pid, "outcome": "killed", "back": self._restart()}

    def _kill_ffmpeg(self) -> dict:
        """SIGKILL the converter's ffmpeg child, waiting up to 20 s for one to run."""
        pid = _first(lambda: _ffmpeg_child(self.stack), 20)
        if pid is None:
            return {"outcome": "no ffmpeg ran within 20 s: nothing killed"}
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return {"pid": pid, "outcome": "ffmpeg ended before the signal"}
        return {"pid": pid, "outcome": "killed"}

    def _restart(self) -> float:
        """Start what is missing, as Kubernetes would; seconds until the stack is ready again."""
        time.sleep(RESTART_PAUSE)
        started = time.monotonic()
        self.stack.up()
        return round(time.monotonic() - started + RESTART_PAUSE, 1)

    def _restart_rabbitmq(self) -> dict:
        self.stack.rabbit.stop()
        time.sleep(5)
        started = time.monotonic()
        self.stack.rabbit.start()
        return {"outcome": "stopped 5 s, started", "back": round(time.monotonic() - started + 5, 1)}

    def _restart_mongodb(self) -> dict:
        self.stack._mongo = None  # the harness's own client reconnects too
        pid = self.stack.kill("mongodb", signal.SIGTERM)
        self.stack.wait_exit(pid, 20)
        return {"pid": pid, "outcome": "stopped (SIGTERM), started", "back": self._restart()}


def _ffmpeg_child(stack: PrivateStack) -> int | None:
    converter = stack.pid("converter")
    for pid in children_of(converter) if converter else []:
        if "ffmpeg" in cmdline(pid) and pid_alive(pid):
            return pid
    return None


def _first(find, timeout: float):
    """What `find` returns first that is not None, polling for up to `timeout` seconds; else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        time.sleep(0.02)
    return None
