"""The private stack every fault test shares (started once; each test leaves it healthy)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from devkit.media import make_media
from devkit.privstack import (FIGURES, HEADER, PrivateMariaDB, PrivateRabbit, PrivateStack, format_figures,
                        start_private_stack)


@pytest.fixture(scope="session")
def private_stack():
    base = Path(tempfile.mkdtemp(prefix="vid2mp3-faults-"))
    rabbit = PrivateRabbit(base / "rabbitmq")
    mariadb = PrivateMariaDB(base / "mariadb")
    stack = None
    try:
        stack = start_private_stack(base, rabbit, mariadb)
        yield stack
    finally:
        if stack is not None:
            stack.devstack("down")
            print(f"\nfault figures: {stack.home / 'fault-figures.txt'}")
        rabbit.stop()
        mariadb.stop()
        if FIGURES and stack is not None:
            # The figures outlive the temp folder: the run's table is kept next to the other test outputs.
            keep = Path(tempfile.gettempdir()) / "vid2mp3-fault-figures.txt"
            shutil.copy(stack.home / "fault-figures.txt", keep)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault-media")
    return {
        "short": make_media(folder / "short.mp4", seconds=2).read_bytes(),
        "audio": make_media(folder / "tone.mp3", seconds=2, video=None).read_bytes(),
    }


@pytest.fixture(autouse=True)
def _healthy_afterwards(request):
    """Whatever a test broke, the next one starts on a running stack with no slow tools."""
    yield
    if "private_stack" in request.fixturenames:
        stack: PrivateStack = request.getfixturevalue("private_stack")
        stack.set_delay("ffmpeg", 0)
        if stack.rabbit.proc is None:
            stack.rabbit.start()
        if stack.mariadb.proc is None:
            stack.mariadb.start()
        stack.up()


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("fault figures (issue 7)")
        terminalreporter.write_line(HEADER)
        for row in FIGURES:
            terminalreporter.write_line(format_figures(row))
