"""hadolint on every Dockerfile, plus the image rules of the issue."""
from __future__ import annotations

import re
import subprocess

import pytest

from .conftest import ROOT, SERVICES, VENV_BIN, tool


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_clean(service):
    exe = tool("hadolint", VENV_BIN / "hadolint")
    p = subprocess.run([exe, str(ROOT / "services" / service / "Dockerfile")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_hadolint_clean_loadgen():
    exe = tool("hadolint", VENV_BIN / "hadolint")
    p = subprocess.run([exe, str(ROOT / "loadtest" / "Dockerfile")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_image_rules(service):
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) == 2 and all(re.search(r":\d+\.\d+\.\d+-slim", f) for f in froms), froms
    assert re.search(r"^USER 10001", text, re.M) and "HEALTHCHECK" in text
    assert "--constraint requirements.lock" in text
    assert "org.opencontainers.image.revision" in text
    for line in re.findall(r"^# hadolint ignore=.*$", text, re.M):
        before = text[: text.index(line)].splitlines()[-1]
        assert before.startswith("#") and len(before) > 20, "ignored hadolint rule without a reason"
    if service in ("auth", "gateway"):
        assert '"gunicorn", "-c", "python:services.common.gunicorn_conf"' in text
    if service == "converter":
        assert "ffmpeg" in text
