"""The services as their images ship: each one runs from a venv holding only its own lock
(`requirements/<service>.lock`, hash-checked, no dependencies resolved) and the project installed
non-editable from a copy of what the Dockerfile copies; it runs its Dockerfile stage's command, with
a cwd outside the repository, and the environment of its image (Dockerfile ENV, /opt/venv being
this run's venv) and of its Kubernetes container (the ConfigMaps of k8s/<service>/, the Secret keys
its manifest names, from kustomize/overlays/dev/secrets.env.example with a fresh Ed25519
JWT_PRIVATE_KEY, one line with literal \\n as the example says, and a random LINK_SECRET).

What differs from Kubernetes, and nothing else (tests/images/conftest.py, `local_overrides`):
- addresses, where the service has the setting: BIND_HOST=127.0.0.1 (not 0.0.0.0 on a shared
  machine); RABBITMQ_URL the machine's broker (127.0.0.1:5672, guest/guest); MYSQL_HOST/PORT/USER/
  PASSWORD the machine's MariaDB (127.0.0.1:3306, root, no password); MONGO_URI this run's MongoDB
  stand-in (nx-27017); SMTP_HOST/SMTP_PORT this run's aiosmtpd server; AUTH_URL and PUBLIC_URL the
  run's auth and gateway; every <SERVICE>_PORT and <SERVICE>_METRICS_PORT the service's manifest sets, free
  ports; OTEL_EXPORTER_OTLP_ENDPOINT this test's OTLP receiver (the janitor keeps
  its OTEL_TRACES_EXPORTER=none).
- the pod's emptyDirs: WORK_DIR (the converter's /work) and HOME (the image's /tmp) are folders of
  this run; TMPDIR is set to the same for every service, so nothing uses the machine's shared /tmp.
- per-run names, for every service: VIDEO_QUEUE, MP3_QUEUE, WEBHOOK_QUEUE, MYSQL_DATABASE,
  MONGO_VIDEOS_DB, MONGO_MP3S_DB, MONGO_JOBS_DB (never the shared broker's real names).
- PYTHONVERBOSE=1: the interpreter's import trace (stderr) shows the file of every imported module.
- the base image's PATH is kept; the converter's ffmpeg is the static build in its venv (imageio-ffmpeg), as in
  the image, which has no other; the interpreter
  is this machine's CPython 3.11 (the image has 3.11.14).
No webhook is used, so WEBHOOK_ALLOWED_NETWORKS keeps its shipped value.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devkit.client import Client
from devkit.media import codec_of, make_media, unique_mp4
from tests.helpers import wait_mail
from tests.images import imports, shipped
from tests.images.process import LONG_RUNNING, Service
from devkit.stack import ROOT

# the first test builds the venvs of all five images when their cache is cold
pytestmark = pytest.mark.timeout(600)
# a line of the import trace naming the file a module came from
LOADED_FROM = re.compile(r"^# code object from '(?P<path>[^']+)'$"
                         r"|^# extension module '[^']+' loaded from '(?P<ext>[^']+)'$")
STDLIB = Path(sys.base_prefix).resolve()


def loaded_files(service: Service) -> list[Path]:
    """Every file the service's processes imported a module from (from the import trace)."""
    found = []
    for line in service.stderr.read_text(errors="replace").splitlines():
        match = LOADED_FROM.match(line)
        if match:
            found.append(Path(match["path"] or match["ext"]))
    return found


def foreign(files: list[Path], venv: Path) -> list[Path]:
    """Files from neither the venv nor the interpreter's standard library (site-packages excluded)."""
    def allowed(path: Path) -> bool:
        resolved = path.resolve()
        if resolved.is_relative_to(venv) or path.is_relative_to(venv):
            return True
        return resolved.is_relative_to(STDLIB) and "site-packages" not in resolved.parts
    return [path for path in files if not allowed(path)]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_each_service_answers_its_health_checks_and_metrics(services, name):
    for path in ("/healthz", "/readyz"):
        response = requests.get(services[name].url(path), timeout=5)
        assert response.status_code == 200, (path, response.text, services[name].logs())
    # the installed project's metadata (no pyproject.toml beside the installed code) names the release
    assert requests.get(services[name].url("/healthz"), timeout=5).json()["version"] == shipped.BUILD_ARGS["VERSION"]
    scrape = requests.get(services[name].metrics_url(), timeout=5)
    assert scrape.status_code == 200 and "process_cpu_seconds_total" in scrape.text, scrape.text[:500]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_each_service_runs_only_its_image_venv(services, image_venvs, name):
    service, venv = services[name], image_venvs[name]
    files = loaded_files(service)
    ours = [path for path in files if "services" in path.parts]
    assert ours and all(path.is_relative_to(venv / "lib") for path in ours), ours
    assert foreign(files, venv) == []
    cwd = Path(f"/proc/{service.proc.pid}/cwd").resolve()
    assert not cwd.is_relative_to(ROOT), cwd


def test_one_job_from_upload_to_email_and_download(services, backing, otlp, tmp_path):
    gateway = services["gateway"].url("")
    user = Client(gateway).signed_up()
    video = tmp_path / "clip.mp4"
    video.write_bytes(unique_mp4(make_media(tmp_path / "source.mp4", seconds=3).read_bytes()))
    response = user.upload(video)
    assert response.status_code in (200, 201, 202), response.text
    job_id = response.json()["job_id"]
    job = user.wait_job(job_id, timeout=120)
    assert job["status"] == "done", (job, services["converter"].logs())
    assert wait_mail(backing["maildir"], job_id, timeout=60), services["notification"].logs()
    download = user.download(job["mp3_id"])
    assert download.status_code == 200, download.text
    (tmp_path / "out.mp3").write_bytes(download.content)
    assert codec_of(tmp_path / "out.mp3") == "mp3"
    assert_one_trace(otlp, job_id, {"gateway", "converter", "notification"})


def assert_one_trace(otlp, job_id: str, services: set[str], timeout: float = 20) -> None:
    """The job's spans reach the receiver (batched, so they may take a few seconds) as one trace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tagged = otlp.spans_with("vid2mp3.job_id", job_id)
        if {span["service"] for span in tagged} >= services:
            break
        time.sleep(0.5)
    assert {span["service"] for span in tagged} >= services, tagged
    assert len({span["trace_id"] for span in tagged}) == 1, tagged


def test_janitor_finishes_a_round(run, image_venvs, envs, backing):
    janitor = Service("janitor", envs["janitor"], run.home / "cwd").start()
    try:
        assert janitor.proc.wait(timeout=120) == 0, janitor.logs()
    finally:
        janitor.stop()
    assert '"janitor round"' in janitor.stdout.read_text(), janitor.logs()
    assert foreign(loaded_files(janitor), image_venvs["janitor"]) == []


@pytest.mark.parametrize("name", shipped.SERVICES)
def test_lock_holds_what_the_service_imports(image_venvs, envs, run, name):
    """Every services.* module the service reaches imports in its image venv, and every third-party
    name they import (inside functions too) is installed there: no ModuleNotFoundError at start or later."""
    modules, third_party = imports.needed(imports.service_roots(name, shipped.image_command(name)))
    check = ("import importlib, importlib.util, sys\n"
             f"for m in {sorted(modules)!r}: importlib.import_module(m)\n"
             f"missing = [n for n in {sorted(third_party)!r} if importlib.util.find_spec(n) is None]\n"
             "sys.exit('not installed: ' + ', '.join(missing) if missing else 0)\n")
    done = _run_in_image(image_venvs[name], envs[name], run, check)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_converter_runs_the_ffmpeg_of_its_own_venv(image_venvs, envs, run):
    """The image installs no ffmpeg of the system's: the converter's comes from its lock."""
    script = "from services.converter.command import ffmpeg_executable as f; print(f())"
    done = _run_in_image(image_venvs["converter"], envs["converter"], run, script)
    assert done.returncode == 0, done.stderr[-3000:]
    found = Path(done.stdout.splitlines()[-1])
    assert found.is_relative_to(image_venvs["converter"]) and "imageio_ffmpeg" in found.parts, found


def _run_in_image(venv, env: dict, run, script: str) -> subprocess.CompletedProcess:
    """Run a Python script in an image's venv with its settings (no import trace: the script prints)."""
    quiet = {key: value for key, value in env.items() if key != "PYTHONVERBOSE"}
    return subprocess.run([str(venv / "bin" / "python"), "-c", script], env=quiet, cwd=run.home / "cwd",
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", imports.WITHOUT_WEB)
def test_workers_and_the_janitor_load_no_web_framework(image_venvs, envs, run, name):
    """No module these services reach (services/common's among them) names Flask or werkzeug, read from
    the source (imports inside functions and under a try too); and importing the entry module, then
    every one of them, in the image venv leaves neither in sys.modules."""
    command = shipped.image_command(name)
    entries = imports.entry_modules(name, command)
    modules, third_party = imports.needed(imports.service_roots(name, command))
    assert entries and not set(imports.WEB_FRAMEWORK) & third_party, sorted(third_party)
    check = ("import importlib, json, sys\n"
             f"for m in {entries + sorted(modules)!r}: importlib.import_module(m)\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    done = _run_in_image(image_venvs[name], envs[name], run, check)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert set(entries) <= set(loaded) and imports.web_modules(loaded) == []


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_no_service_logged_an_error(services, name):
    """Last in this module, after the job: every log line is one JSON object, none an error, no traceback."""
    service = services[name]
    records = [json.loads(line) for line in service.stdout.read_text().splitlines()]
    assert [r for r in records if r["level"] in ("ERROR", "CRITICAL")] == []
    assert "Traceback" not in service.stderr.read_text(), service.logs()
