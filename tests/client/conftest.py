"""The command-line client and SDK (clients/) against the running stack: the CLI runs as a user runs
it, in a process of its own, with VID2MP3_URL and a token in its environment and its own config and
cache folders."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.client import Client as ApiUser
from devkit.media import make_media
from devkit.stack import ROOT

CLIENT_SRC = ROOT / "clients" / "src"


class Cli:
    """`python -m vid2mp3` for one user, with folders of its own (XDG_CONFIG_HOME, XDG_CACHE_HOME)."""

    def __init__(self, home: Path, url: str, token: str | None):
        self.home, self.url = home, url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VID2MP3_")}
        self.env.update(PYTHONPATH=str(CLIENT_SRC), XDG_CONFIG_HOME=str(home / "config"),
                        XDG_CACHE_HOME=str(home / "cache"), VID2MP3_URL=url)
        if token:
            self.env["VID2MP3_TOKEN"] = token

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "vid2mp3", *map(str, args)]

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env={**self.env, **env}, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def json(self, *args: str, expect: int = 0, **env: str):
        done = self.run(*args, "--json", **env)
        assert done.returncode == expect, (done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kwargs)


@pytest.fixture
def user(stack) -> ApiUser:
    return ApiUser(stack["gateway"]).signed_up()


@pytest.fixture
def cli(stack, user, tmp_path) -> Cli:
    return Cli(tmp_path / "home", stack["gateway"], user.token)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Three short real videos, different in content (no dedup between them)."""
    folder = tmp_path_factory.mktemp("client-videos")
    return [make_media(folder / f"clip{n}.mp4", seconds=2, video="testsrc=size=160x120:rate=5",
                       audio=f"sine=frequency={300 + 100 * n}") for n in range(3)]
