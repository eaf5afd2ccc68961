"""Per-job temp folders of the converter, named after the process that made them, so a folder a
killed converter left (kill -9 skips its own clean-up) can be told from a live one's."""
from __future__ import annotations

import os
import shutil
import tempfile

from . import config

PREFIX = "vid2mp3-"


def root() -> str:
    folder = config.env("WORK_DIR") or tempfile.gettempdir()
    os.makedirs(folder, exist_ok=True)
    return folder


def make() -> str:
    return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root())


def clean_stale() -> int:
    """Remove the folders of processes that no longer run; returns how many."""
    removed = 0
    for name in os.listdir(root()):
        if not name.startswith(PREFIX):
            continue
        try:
            os.kill(int(name[len(PREFIX):].split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root(), name), ignore_errors=True)
            removed += 1
        except (ValueError, PermissionError):
            continue
    return removed
