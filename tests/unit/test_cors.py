"""CORS rules on a small Flask app shaped like the gateway's routes (the real gateway through gunicorn:
tests/integration/test_cors.py)."""
from __future__ import annotations

import pytest
from flask import Blueprint, Flask

from services.common import config
from services.gateway import cors

ALLOWED = "https://app.example"


def _app(monkeypatch, origins: str) -> Flask:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", origins)
    app = Flask("t")
    app.add_url_rule("/jobs", "jobs", lambda: {"jobs": []})
    app.add_url_rule("/upload", "upload", lambda: ("", 202), methods=["POST"])
    tus = Blueprint("tus", "t", url_prefix="/uploads")
    tus.add_url_rule("/<upload_id>", "options", lambda upload_id: ("", 204, {"Tus-Version": "1.0.0"}),
                     methods=["OPTIONS"], provide_automatic_options=False)
    tus.add_url_rule("/<upload_id>", "patch", lambda upload_id: ("", 204), methods=["PATCH"],
                     provide_automatic_options=False)
    tus.before_request(lambda: ("no Tus-Resumable", 412))  # like tus' check: a preflight must not reach it
    app.register_blueprint(tus)
    cors.register(app)
    return app


def _preflight(client, path: str, origin: str, method: str = "POST"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": "authorization,tus-resumable"})


def test_no_origins_no_cors_headers_at_all(monkeypatch):
    client = _app(monkeypatch, "").test_client()
    for response in (client.get("/jobs", headers={"Origin": ALLOWED}), _preflight(client, "/upload", ALLOWED)):
        assert not [h for h in response.headers.keys() if h.startswith("Access-Control")]
        assert "Origin" not in response.headers.get("Vary", "")


def test_preflight_of_an_allowed_origin_is_answered_before_any_route_check(monkeypatch):
    client = _app(monkeypatch, f"http://other.example, {ALLOWED}").test_client()
    response = _preflight(client, "/uploads/abc", ALLOWED, "PATCH")
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Methods"] == "OPTIONS, PATCH"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "if-none-match", "tus-resumable", "upload-length",
            "upload-offset", "upload-metadata", "upload-defer-length", "upload-concat"} <= allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers  # Bearer tokens, never cookies
    assert _preflight(client, "/upload", ALLOWED).headers["Access-Control-Allow-Methods"] == "OPTIONS, POST"


def test_answers_to_an_allowed_origin_expose_the_api_headers(monkeypatch):
    response = _app(monkeypatch, ALLOWED).test_client().get("/jobs", headers={"Origin": ALLOWED})
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Tus-Resumable", "Tus-Version",
            "Tus-Max-Size", "Tus-Extension", "Job-Id", "RateLimit", "RateLimit-Policy", "Retry-After", "ETag",
            "Link"} <= exposed
    assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize("origin", ["null", "https://evil.example", f"{ALLOWED}/", f"{ALLOWED}/path",
                                    "HTTPS://APP.EXAMPLE", f"{ALLOWED}:443", f"{ALLOWED} https://evil.example",
                                    "*", f"{ALLOWED}.evil.example", "http://app.example"])
def test_any_other_origin_gets_no_cors_header(monkeypatch, origin):
    client = _app(monkeypatch, ALLOWED).test_client()
    for response in (client.get("/jobs", headers={"Origin": origin}), _preflight(client, "/upload", origin),
                     _preflight(client, "/uploads/abc", origin, "PATCH")):
        assert not [h for h in response.headers.keys() if h.startswith("Access-Control")], origin
        assert "Origin" in response.headers["Vary"]  # what a cache keeps depends on the Origin


def test_a_preflight_for_no_route_is_its_404(monkeypatch):
    response = _preflight(_app(monkeypatch, ALLOWED).test_client(), "/nothing", ALLOWED)
    assert response.status_code == 404
    assert "Access-Control-Allow-Methods" not in response.headers


@pytest.mark.parametrize("value", ["*", "null", "https://a.example/", "https://a.example/x", "https://*.a.example",
                                   "ftp://a.example", "https://user@a.example", "https://a.example?x", "a.example"])
def test_a_setting_that_is_not_exact_origins_stops_start_up(monkeypatch, value):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"https://ok.example,{value}")
    with pytest.raises(SystemExit, match="CORS_ALLOWED_ORIGINS"):
        config.validate()


def test_origins_are_kept_as_browsers_write_them(monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", " HTTPS://App.Example:443 ,http://127.0.0.1:8081,")
    assert config.allowed_origins() == {"https://app.example", "http://127.0.0.1:8081"}
