"""Free loopback ports and waiting for a process's HTTP endpoint to answer."""
from __future__ import annotations

import socket
import subprocess
import time

import requests


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, what: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Poll `url` until it answers 200; fails early when `proc` (the process behind it) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f} s ({url})")
