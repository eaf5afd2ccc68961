"""`pip install ./clients` works: the wheel builds offline (no build isolation: setuptools from the
.venv), names its dependencies and the `vid2mp3` console script, and the installed script runs."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from devkit.stack import ROOT

DEPENDENCIES = {"requests", "tuspy", "click", "rich", "platformdirs", "standardwebhooks"}


def test_the_client_imports_nothing_of_the_server():
    """It speaks the public API only, so it installs and runs without the services."""
    for path in (ROOT / "clients" / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not [n for n in names if n.split(".")[0] in ("services", "devkit", "tests")], (path, names)


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_client_builds_and_installs_with_its_console_script(tmp_path):
    source = tmp_path / "clients"  # a copy: setuptools leaves build/ and *.egg-info where it builds
    shutil.copytree(ROOT / "clients", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path), str(source))
    [wheel] = tmp_path.glob("vid2mp3_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "vid2mp3/cli.py" in names and "vid2mp3/py.typed" in names
    assert not [name for name in names if name.startswith(("services/", "tests/", "devkit/"))]
    assert "Name: vid2mp3-client" in metadata
    required = {line.split(":", 1)[1].strip().split(">")[0].split("=")[0].split(" ")[0]
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert required == DEPENDENCIES
    assert "vid2mp3 = vid2mp3.cli:main" in entry_points

    target = tmp_path / "installed"
    _pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    script = Path(target / "bin" / "vid2mp3")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "vid2mp3, version 0.1.0" in done.stdout, done.stdout + done.stderr
