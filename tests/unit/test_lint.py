"""The linter and the type checker pass, with the configuration in pyproject.toml ([tool.ruff], [tool.mypy]).

They run from the virtualenv (requirements/tools.lock, installed by `make test`), as the pre-commit hooks do.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


COMMANDS = {"ruff": ["ruff", "check", "--no-fix", "--output-format", "concise", "."], "mypy": ["mypy"]}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_clean(command):
    done = subprocess.run([str(VENV_BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"{' '.join(command)} found:\n{done.stdout}{done.stderr}"
