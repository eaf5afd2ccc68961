"""CORS on the real gateway (gunicorn, auth behind it) for the headers the other parts of the API added:
preflights of the key routes, problem answers, conditional polls and pages, upload quotas, all readable
by a page on an allowed origin; nothing for another origin. (The rules themselves: tests/unit/test_cors.py;
Uppy in Chromium: tests/e2e/test_cors_uppy.py.)"""
from __future__ import annotations

import os

import pytest
import requests

from devkit.client import Client
from devkit.stack import private_gateways

ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    env = dict(os.environ, AUTH_URL=stack["auth"])
    with private_gateways(env, {"CORS_ALLOWED_ORIGINS": ORIGIN}, tmp_path_factory.mktemp("cors"), 1) as [(base, _)]:
        yield base


def _exposed(response: requests.Response) -> set[str]:
    assert response.headers.get("Access-Control-Allow-Origin") == ORIGIN, (response.status_code, response.headers)
    return {name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")}


def _preflight(url: str, method: str, origin: str = ORIGIN) -> requests.Response:
    return requests.options(url, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type,if-none-match"})


@pytest.mark.parametrize("path,method", [("/me/api-keys", "POST"), ("/me/api-keys/0123456789abcdef", "DELETE"),
                                         ("/jobs/0123456789abcdef01234567", "GET"), ("/me/webhook-secret", "POST")])
def test_preflights_of_the_new_routes_are_answered_without_credentials(gateway, path, method):
    answer = _preflight(gateway + path, method)
    assert answer.status_code == 204 and answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert method in answer.headers["Access-Control-Allow-Methods"]
    assert "if-none-match" in answer.headers["Access-Control-Allow-Headers"].lower()
    other = _preflight(gateway + path, method, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in other.headers


def test_problem_answers_are_readable_by_the_page(gateway):
    refused = requests.get(f"{gateway}/jobs", headers={"Origin": ORIGIN, "Authorization": "Bearer v2m_nope"},
                           timeout=10)
    assert refused.status_code == 401 and refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "invalid_api_key" and "Retry-After" in _exposed(refused)


def test_etag_link_and_ratelimit_are_exposed_on_polls_pages_and_uploads(gateway):
    user = Client(gateway).signed_up()
    key = requests.post(f"{gateway}/me/api-keys", headers=user.auth, json={"name": "page"}, timeout=10).json()["key"]
    page = {"Origin": ORIGIN, "Authorization": f"Bearer {key}"}
    created = [requests.post(f"{gateway}/uploads/", timeout=10, headers={
        **page, "Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": "filename YS5tcDQ="})
        for _ in range(2)]
    for answer in created:
        assert answer.status_code == 201, answer.text
        assert {"Location", "RateLimit", "RateLimit-Policy", "Upload-Expires"} <= _exposed(answer)
        assert "RateLimit" in answer.headers
    first = requests.get(f"{gateway}/jobs?limit=1", headers=page, timeout=10)
    assert first.status_code == 200 and {"ETag", "Link"} <= _exposed(first)
    unchanged = requests.get(f"{gateway}/jobs?limit=1", headers={**page, "If-None-Match": first.headers["ETag"]},
                             timeout=10)
    assert unchanged.status_code == 304 and "ETag" in _exposed(unchanged)
    for answer in created:
        location = answer.headers["Location"]
        url = location if location.startswith("http") else gateway + location
        assert requests.delete(url, headers={**page, "Tus-Resumable": "1.0.0"}, timeout=10).status_code == 204
