"""A service process run as its image runs it, for tests/images."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.images import shipped

LONG_RUNNING = ("auth", "gateway", "converter", "notification")


class Service:
    """One service process started with its image's command; stdout (its JSON logs) and stderr
    (gunicorn, tracebacks and the interpreter's import trace) go to files of their own."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path, argv: list[str] | None = None):
        self.name, self.env, self.cwd = name, env, cwd
        self.argv = argv or shipped.image_command(name)
        self.stdout, self.stderr = cwd / f"{name}.out", cwd / f"{name}.err"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def url(self, path: str) -> str:
        port = self.env.get(f"{self.name.upper()}_PORT") or self.env[f"{self.name.upper()}_METRICS_PORT"]
        return f"http://127.0.0.1:{port}{path}"

    def metrics_url(self) -> str:
        port = self.env[f"{self.name.upper()}_METRICS_PORT"]
        return f"http://127.0.0.1:{port}/metrics"

    def logs(self) -> str:
        """The last lines of both outputs, without the import trace."""
        err = [line for line in self.stderr.read_text(errors="replace").splitlines()
               if not line.startswith(("#", "import "))]
        return "\n".join(self.stdout.read_text(errors="replace").splitlines()[-20:] + err[-30:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
