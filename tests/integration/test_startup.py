"""A bad setting stops a process at boot, before it serves anything."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.net import free_port
from devkit.stack import ROOT

VENV_BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", [
    [str(VENV_BIN / "gunicorn"), "-c", "python:services.common.gunicorn_conf", "services.gateway:create_app()"],
    [sys.executable, "-m", "services.converter"],
])
def test_bad_max_upload_bytes_stops_the_process_at_boot(command):
    env = dict(os.environ, MAX_UPLOAD_BYTES="2GB", GATEWAY_PORT=str(free_port()),
               CONVERTER_METRICS_PORT=str(free_port()), OTEL_SERVICE_NAME="gateway", OTEL_TRACES_EXPORTER="none")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "invalid settings: MAX_UPLOAD_BYTES='2GB'" in done.stdout + done.stderr
