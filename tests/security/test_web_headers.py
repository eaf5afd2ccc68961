"""The web app's delivery: security headers, caching, its page-load metric, and no inline code or
markup written from data (the browser test in tests/e2e/test_webapp.py drives the page itself)."""
from __future__ import annotations

import re

import pytest
import requests

from services.gateway.webapp import STATIC

NEEDED_CSP = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
              "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'"]


def _csp(response) -> dict[str, str]:
    return {d.split()[0]: d.strip() for d in response.headers["Content-Security-Policy"].split(";") if d.strip()}


@pytest.mark.parametrize("path", ["/", "/assets/app.js", "/assets/app.css", "/assets/icon.svg"])
def test_security_headers(stack, path):
    response = requests.get(stack["gateway"] + path, timeout=10)
    assert response.status_code == 200
    csp = _csp(response)
    for directive in NEEDED_CSP:
        assert csp[directive.split()[0]] == directive, csp
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in response.headers


def test_types_and_revalidation(stack):
    expected = {"/": "text/html", "/assets/app.js": "text/javascript", "/assets/app.css": "text/css",
                "/assets/icon.svg": "image/svg+xml"}
    for path, mime in expected.items():
        response = requests.get(stack["gateway"] + path, timeout=10)
        assert response.headers["Content-Type"].split(";")[0] == mime, path
        assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"]
        again = requests.get(stack["gateway"] + path, headers={"If-None-Match": response.headers["ETag"]}, timeout=10)
        assert again.status_code == 304 and not again.content


@pytest.mark.parametrize("path", ["/assets/../webapp.py", "/assets/%2e%2e/webapp.py", "/assets/..%2fwebapp.py",
                                  "/assets/nothing.js", "/assets/", "/index.html", "/static/index.html"])
def test_nothing_but_the_assets(stack, path):
    response = requests.get(stack["gateway"] + path, timeout=10)
    assert response.status_code == 404, path
    assert "import " not in response.text and "def " not in response.text


def test_page_loads_are_counted(stack):
    def loads() -> float:
        text = requests.get(f"{stack['metrics']['gateway']}/metrics", timeout=10).text
        found = re.search(r"^gateway_web_page_loads_total (\S+)$", text, re.M)
        assert found, "gateway_web_page_loads_total not exported"
        return float(found.group(1))

    before = loads()
    for _ in range(3):
        assert requests.get(stack["gateway"] + "/", timeout=10).status_code == 200
    requests.get(stack["gateway"] + "/assets/app.js", timeout=10)  # assets are not page loads
    assert loads() == before + 3


def test_no_inline_code_and_no_markup_from_data():
    """What the CSP would block must not be needed; data reaches the page only as text."""
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html, re.I), "inline style or handler"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "a file from elsewhere"
    for script in (STATIC / "assets").glob("*.js"):
        code = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{script.name} uses {sink}"
