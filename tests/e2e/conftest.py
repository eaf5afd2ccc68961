"""What the browser tests share: Debian's Chromium driven by Playwright (its own browser download cannot
work here), and a folder served on a port of its own (a page on another origin than the gateway)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from devkit.net import static_site  # noqa: F401 (the e2e tests import it from here)
from devkit.stack import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (Debian package 'chromium'); .ci/run installs it")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stack):
    """A fresh browser profile on the app; the test fails on any dialog, page error or CSP refusal."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1000, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.problems = []
    page.on("dialog", lambda dialog: (page.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on("console", lambda msg: msg.type == "error" and "Content Security Policy" in msg.text
            and page.problems.append(msg.text))
    page.goto(stack["gateway"] + "/")
    yield page
    context.close()
    assert page.problems == []
