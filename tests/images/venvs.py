"""The virtualenv of a service image, made as the Dockerfile's build stage makes /opt/venv.

The locked dependencies are installed once per lock and kept under
~/.cache/vid2mp3/image-venvs/<service>-<sha256 of the lock> (never changed after it is complete).
Each run gets a copy of it (hard links: instant, and the cache is never written through them) into
which the project is installed from a staging folder holding only what the Dockerfile copies; then
setuptools and pip are removed, as in the image.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from devkit.stack import ROOT

CACHE = Path.home() / ".cache" / "vid2mp3" / "image-venvs"
# What the Dockerfile COPYs of the source (.dockerignore keeps caches out); the service folder is added.
COPIED = ("pyproject.toml", "services/__init__.py", "services/common")
INTERPRETER = re.compile(rb"/[^\s'\"]*/bin/python[\d.]*")
PIP = ("-m", "pip", "--disable-pip-version-check", "-q")


def lock_of(service: str) -> Path:
    return ROOT / "requirements" / f"{service}.lock"


def cached_venv(service: str) -> Path:
    """The venv holding exactly `requirements/<service>.lock`, built when this lock has none yet."""
    lock = lock_of(service)
    target = CACHE / f"{service}-{hashlib.sha256(lock.read_bytes()).hexdigest()}"
    if (target / ".complete").exists():
        return target
    building = CACHE / f".building-{target.name}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    # venv from a venv's python uses the base interpreter, as python:3.11-slim's `python -m venv` does
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    subprocess.run([str(building / "bin" / "python"), *PIP, "install", "--require-hashes", "--no-deps",
                    "-r", str(lock)], check=True)
    (building / ".complete").touch()
    try:
        building.rename(target)
    except OSError:  # another run finished the same lock first: theirs is as good
        shutil.rmtree(building, ignore_errors=True)
    for old in CACHE.glob(f"{service}-*"):  # venvs of earlier locks: runs use copies, never these
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def stage_source(service: str, dest: Path) -> Path:
    """A build context holding only what the Dockerfile copies for `service`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for rel in (*COPIED, f"services/{service}"):
        source, target = ROOT / rel, dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    return dest


def run_venv(service: str, dest: Path, work: Path) -> Path:
    """This run's venv of `service`: the cached one, plus the project from a staged copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--link", str(cached_venv(service)), str(dest)], check=True)
    _point_scripts_at(dest)
    python = str(dest / "bin" / "python")
    source = stage_source(service, work / f"src-{service}")
    subprocess.run([python, *PIP, "install", "--no-deps", "--no-build-isolation", str(source)], check=True,
                   cwd=work)
    subprocess.run([python, *PIP, "uninstall", "--yes", "setuptools"], check=True, cwd=work)
    for path in (*dest.glob("bin/pip*"), *dest.glob("lib/python*/site-packages/pip")):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return dest


def _point_scripts_at(venv: Path) -> None:
    """Console scripts name their interpreter by absolute path (in the #! line, or for long paths in
    pip's /bin/sh wrapper on the next line): make them use this copy's. Each is replaced by a new
    file, since the copy's files are hard links into the cache."""
    python = str(venv / "bin" / "python").encode()
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        content = script.read_bytes()
        if not content.startswith(b"#!"):
            continue
        lines = content.split(b"\n", 2)
        head = [INTERPRETER.sub(python, line) for line in lines[:2]]
        if head != lines[:2]:
            script.unlink()
            script.write_bytes(b"\n".join(head + lines[2:]))
            script.chmod(0o755)
