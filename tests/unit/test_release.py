"""The release's version, pyproject.toml's [project] version, is what the processes report: /healthz of
the HTTP services and of the queue workers, and both OpenAPI documents' info.version."""
from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import requests
from flask import Flask

from services.common import metrics_http, release
from services.common.web import health_blueprint

ROOT = Path(__file__).resolve().parents[2]


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_release_is_the_project_version():
    assert release.version() == project_version()


def test_installed_code_reads_its_distribution_metadata(monkeypatch, tmp_path):
    """Away from a source tree (the images install the project), the installed metadata says it."""
    monkeypatch.setattr(release, "_SOURCE_PYPROJECT", tmp_path / "pyproject.toml")
    release.version.cache_clear()
    try:
        assert release.version() == metadata.version("vid2mp3")
    finally:
        release.version.cache_clear()


def test_http_services_healthz_shows_the_version():
    app = Flask(__name__)
    app.register_blueprint(health_blueprint({}))
    body = app.test_client().get("/healthz").get_json()
    assert body == {"status": "ok", "version": project_version()}


def test_queue_workers_healthz_shows_the_version():
    server = metrics_http.start(0, {"/healthz": lambda: True, "/readyz": lambda: True})
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok", "version": project_version()}
        assert requests.get(f"{base}/readyz", timeout=5).json() == {"status": "ok"}
    finally:
        server.shutdown()
        server.server_close()


def test_openapi_documents_carry_the_version():
    from services.auth.openapi import SPEC as AUTH
    from services.gateway.openapi import SPEC as GATEWAY

    assert AUTH["info"]["version"] == GATEWAY["info"]["version"] == project_version()


def test_build_info_and_traces_report_the_release_unless_service_version_says_otherwise(monkeypatch):
    from services.common import telemetry

    monkeypatch.delenv("SERVICE_VERSION", raising=False)
    assert telemetry.reported_version() == project_version()
    monkeypatch.setenv("SERVICE_VERSION", "1.2.3-rc.1")
    assert telemetry.reported_version() == "1.2.3-rc.1"
