"""hadolint on every Dockerfile, the image rules of the issue, and the locks the images install."""
from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from .conftest import IMAGES, ROOT, SERVICES, VENV_BIN, tool

DOCKERFILE = ROOT / "Dockerfile"
PIN = re.compile(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$", re.M)


def _stage(text: str, name: str) -> str:
    """The instructions of the stage `FROM ... AS name`, up to the next FROM."""
    match = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert match, f"no stage {name}"
    return match.group(1)


def _pins(path) -> dict[str, str]:
    return dict(PIN.findall(path.read_text()))


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "loadtest/Dockerfile"])
def test_hadolint_clean(dockerfile):
    exe = tool("hadolint", VENV_BIN / "hadolint")
    p = subprocess.run([exe, str(ROOT / dockerfile)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_image_rules():
    text = DOCKERFILE.read_text()
    bases = [f for f in re.findall(r"^FROM (\S+)", text, re.M) if ":" in f]
    assert len(bases) == 2 and len(set(bases)) == 1 and re.search(r":\d+\.\d+\.\d+-slim", bases[0]), bases
    assert re.search(r"^USER 10001", text, re.M)
    assert "--require-hashes --no-deps -r requirements/${SERVICE}.lock" in text
    assert "org.opencontainers.image.revision" in text
    for line in re.findall(r"^# hadolint ignore=.*$", text, re.M):
        before = text[: text.index(line)].splitlines()[-1]
        assert before.startswith("#") and len(before) > 20, "ignored hadolint rule without a reason"
    # the image is the stage named by the SERVICE build argument
    assert text.rstrip().endswith("FROM ${SERVICE} AS image")
    assert set(re.findall(r"^FROM runtime AS (\S+)", text, re.M)) == set(IMAGES)
    for service in SERVICES:
        stage = _stage(text, service)
        assert "HEALTHCHECK --" in stage and re.search(r"^CMD \[", stage, re.M) and "EXPOSE" in stage
        if service in ("auth", "gateway"):
            assert '"gunicorn", "-c", "python:services.common.gunicorn_conf"' in stage
    # the janitor runs to completion (a CronJob): one round, no port, no health check
    janitor = _stage(text, "janitor")
    assert 'CMD ["python", "-m", "services.janitor", "--once"]' in janitor
    assert "EXPOSE" not in janitor and re.search(r"^HEALTHCHECK NONE$", janitor, re.M)
    # ffmpeg comes from the converter's lock (imageio-ffmpeg's static build), never from apt
    assert "apt-get" not in text


def test_images_leave_out_the_local_stack_tool():
    """An image gets the shared code and its own service's, never services/devstack (make up)."""
    copied = re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(), re.M)
    sources = {c for c in copied if c.startswith("services")}
    assert sources == {"services/__init__.py", "services/common", "services/${SERVICE}"}, sources
    assert "services/devstack" in (ROOT / ".dockerignore").read_text().splitlines()


@pytest.mark.parametrize("service", IMAGES)
def test_service_lock(service):
    """Each image's lock: hashes for every pin, the same versions as the .venv's, only its own extras."""
    lock = ROOT / "requirements" / f"{service}.lock"
    pins, everything = _pins(lock), _pins(ROOT / "requirements.lock")
    assert pins and lock.read_text().count("==") == len(pins), "a pin without hashes"
    assert {name: everything.get(name) for name in pins} == pins
    assert ("ffmpeg-python" in pins) == ("imageio-ffmpeg" in pins) == (service == "converter")
    assert ("flask" in pins) == (service in ("auth", "gateway"))
    assert ("pyjwt" in pins) == ("cryptography" in pins) == (service in ("auth", "gateway"))  # both verify tokens


def test_every_image_has_its_extra_and_lock():
    """make lock makes a lock per image from the pyproject extra of the same name."""
    make = re.search(r"^SERVICES := (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert make == IMAGES
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(IMAGES) <= set(extras) and (ROOT / "requirements" / "janitor.lock").exists()
    assert extras["janitor"] == [], "the janitor needs only the shared dependencies"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements/tools.lock", "requirements/checkov.lock"])
def test_locks_are_hashed(lock):
    text = (ROOT / lock).read_text()
    assert text.count("==") == len(_pins(ROOT / lock)) > 0 and "--hash=sha256:" in text
    if lock == "requirements/tools.lock":
        everything = _pins(ROOT / "requirements.lock")
        shared = {n: v for n, v in _pins(ROOT / lock).items() if n in everything}
        assert shared and all(everything[n] == v for n, v in shared.items()), "tools moved a locked version"
