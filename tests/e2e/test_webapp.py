"""The web app in a real browser: Debian's Chromium driven by Playwright, by the page's accessible names
(the contract an outside browser test relies on). Screenshots of every step: test-output/screenshots/."""
from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from playwright.sync_api import Page, expect

from services.common import config
from devkit.client import Client
from devkit.media import make_media, unique_mp4
from devkit.stack import start_gateway

from .conftest import SHOTS

HOSTILE = "<img src=x onerror=alert(1)>.mp4"
LONG = 60_000  # ms for things the server does (a conversion of a few seconds of media)
# waits, not timing assertions: generous, for a machine busy with other tests (argon2 logins, ffmpeg)
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def account(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def media(tmp_path_factory, ten_minute_video):
    folder = tmp_path_factory.mktemp("webapp")
    return {"short": make_media(folder / "holiday clip.mp4", seconds=2), "long": ten_minute_video}


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, user: Client) -> None:
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def convert(page: Page, file) -> None:
    page.get_by_label("Video file").set_input_files(file)
    page.get_by_role("button", name="Convert").click()


def job(page: Page, name: str):
    return page.get_by_role("listitem").filter(has_text=name)


def test_account_to_download_and_delete(page, stack, media):
    user = Client(stack["gateway"])
    shot(page, "01-start")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 8 characters")  # checked before asking
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    shot(page, "02-account-created")

    sent = []  # the page uses tus when the gateway offers it, one multipart POST otherwise
    page.on("request", lambda r: "/upload" in r.url and sent.append((r.method, urlparse(r.url).path)))
    page.get_by_text("Output options").click()
    page.get_by_label("Bitrate").select_option("128k")
    page.get_by_label("Title").fill("Holiday")
    convert(page, media["short"])
    item = job(page, "holiday clip.mp4")
    expect(item).to_have_count(1)
    expect(item).to_contain_text(re.compile("queued|converting|done"))
    expect(item.get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
    expect(item.locator("audio")).to_have_count(1)
    expect(item.locator("audio")).to_have_attribute("src", re.compile("^(blob:|https?:)"), timeout=LONG)
    expect(item.get_by_role("button", name="Cancel")).to_be_hidden()
    shot(page, "03-done")
    if "Tus-Resumable" in requests.options(f"{stack['gateway']}/uploads/", timeout=10).headers:
        assert ("POST", "/uploads/") in sent and sent[-1][0] == "PATCH" and ("POST", "/upload") not in sent, sent
    else:
        assert ("POST", "/upload") in sent and not any(method == "PATCH" for method, _ in sent), sent

    view = requests.get(f"{user.base}/jobs", headers={"Authorization": f"Bearer {user.login()}"},
                        timeout=10).json()["jobs"][0]
    src = item.locator("audio").get_attribute("src")
    assert src == view["link"] if view.get("link") else src.startswith("blob:"), (src, view)  # the signed link first
    with page.expect_download() as download:
        item.get_by_role("link", name="Download").click()
    data = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == "holiday clip.mp3"
    assert data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0), data[:16]
    assert len(data) > 10_000

    item.get_by_role("button", name="Delete").click()
    expect(item).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_text("Deleted.")
    assert requests.get(f"{user.base}/jobs", headers=user.auth, timeout=10).json()["jobs"] == []
    shot(page, "04-deleted")


def test_cancel_a_long_conversion(page, account, media):
    log_in(page, account)
    convert(page, media["long"])
    item = job(page, "lecture.mp4")
    expect(item.get_by_role("status")).to_have_text(re.compile("^(queued|converting)"), timeout=LONG)
    shot(page, "05-converting")
    item.get_by_role("button", name="Cancel").click()
    expect(item.get_by_role("status")).to_have_text("cancelled", timeout=LONG)
    expect(item.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(item.get_by_role("button", name="Delete")).to_be_visible()
    shot(page, "06-cancelled")


def test_failed_job_shows_its_reason(page, account):
    log_in(page, account)
    convert(page, {"name": "notes.mp4", "mimeType": "video/mp4", "buffer": b"this is a shopping list\n" * 50})
    status = job(page, "notes.mp4").get_by_role("status")
    expect(status).to_have_text(re.compile(r"^failed: \w+"), timeout=LONG)
    assert "{" not in status.inner_text()  # words, not JSON
    shot(page, "07-failed")


def test_hostile_file_name_is_text(page, account, media):
    log_in(page, account)
    convert(page, {"name": HOSTILE, "mimeType": "video/mp4", "buffer": media["short"].read_bytes()})
    item = job(page, HOSTILE)
    expect(item).to_have_count(1)
    expect(item.locator(".job-name")).to_have_text(HOSTILE)
    assert page.locator("#jobs img").count() == 0
    expect(item.get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
    page.wait_for_timeout(300)  # an injected onerror would have fired by now (the page fixture checks dialogs)
    shot(page, "08-hostile-name")


def test_keyboard_only_on_a_phone(page, account, media):
    assert account.upload(media["short"], name="a rather long file name " * 6 + ".mp4").status_code == 202
    page.set_viewport_size({"width": 390, "height": 844})
    focused = lambda: page.evaluate("document.activeElement.id || document.activeElement.textContent")  # noqa: E731
    for _ in range(5):  # skip link, then the form's fields in order
        page.keyboard.press("Tab")
        if focused() == "email":
            break
    assert focused() == "email"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "no visible focus"
    page.keyboard.type(account.email)
    page.keyboard.press("Tab")
    assert focused() == "password"
    page.keyboard.type(account.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_role("listitem").first).to_be_visible(timeout=LONG)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal scroll"
    shot(page, "09-phone")
    page.get_by_role("button", name="Log out").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Email")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0


def test_polls_when_the_server_refuses_streams(page, stack, account, media):
    """Every live-stream place of the gateway taken (EVENT_STREAMS_MAX) by someone else's long job: the page
    gets 503 too_busy for its stream and follows its job by polling instead, to the end."""
    holders, others = [], []
    while len(holders) < config.env_int("EVENT_STREAMS_MAX"):  # one user may hold EVENT_STREAMS_PER_USER
        other = Client(stack["gateway"]).signed_up()
        long_job = other.upload(media["long"]).json()["job_id"]
        others.append((other, long_job))
        places = min(config.env_int("EVENT_STREAMS_PER_USER"), config.env_int("EVENT_STREAMS_MAX") - len(holders))
        for _ in range(places):
            held = requests.get(f"{other.base}/jobs/{long_job}/events", headers=other.auth, stream=True, timeout=60)
            assert held.status_code == 200, held.text
            holders.append(held)
    refused, polled = [], []
    page.on("response", lambda r: r.url.endswith("/events") and refused.append(r.status))
    page.on("request", lambda r: re.search(r"/jobs/[^/?]+$", r.url) and polled.append(r.url))
    try:
        log_in(page, account)
        # new bytes: an identical earlier upload would make this job done at once (dedup), with nothing to follow
        fresh = unique_mp4(media["short"].read_bytes())
        convert(page, {"name": "polled.mp4", "mimeType": "video/mp4", "buffer": fresh})
        expect(job(page, "polled.mp4")).to_have_count(1)
        deadline = time.monotonic() + 20
        while len(polled) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert 503 in refused and len(polled) >= 2, (refused, polled)
    finally:
        for other, long_job in others:
            requests.post(f"{other.base}/jobs/{long_job}/cancel", headers=other.auth, timeout=10)
        for held in holders:
            held.close()
    expect(job(page, "polled.mp4").get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
    shot(page, "10-polled")


def test_tus_upload_resumes_after_a_reload(page, stack, account, media):
    """Cut off after its first chunk (the network fails, then the tab is reloaded), the same file picks up
    where the server's copy ends: HEAD, then PATCH from there, no second upload."""
    if "Tus-Resumable" not in requests.options(f"{stack['gateway']}/uploads/", timeout=10).headers:
        pytest.skip("this gateway offers no tus uploads (OPTIONS /uploads/ without Tus-Resumable)")
    assert media["long"].stat().st_size > 8 * 1024 * 1024  # more than one chunk
    log_in(page, account)

    def cut_second_chunk(route):
        if route.request.method == "PATCH" and route.request.headers.get("upload-offset") != "0":
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/uploads/*", cut_second_chunk)
    with page.expect_event("requestfailed", lambda r: r.method == "PATCH"):
        convert(page, media["long"])
    page.unroute("**/uploads/*")
    page.reload()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()  # the tab keeps its session
    sent = []
    page.on("request", lambda r: "/uploads/" in r.url and r.method != "OPTIONS"
            and sent.append((r.method, r.headers.get("upload-offset"))))
    convert(page, media["long"])
    item = job(page, "lecture.mp4").filter(has_text=re.compile("queued|converting"))
    expect(item).to_have_count(1, timeout=LONG)
    assert sent[0][0] == "HEAD" and ("POST", None) not in sent, sent
    assert [offset for method, offset in sent if method == "PATCH"][0] not in (None, "0"), sent
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('vid2mp3.tus:')).length") == 0
    item.get_by_role("button", name="Cancel").click()
    expect(item).to_have_count(0)  # cancelled: the filter no longer matches
    shot(page, "11-resumed")


@pytest.fixture(scope="module")
def one_job_gateway(stack, tmp_path_factory):
    """A gateway of our own on the test stack where a user may have one unfinished job at a time."""
    log = tmp_path_factory.mktemp("one-job") / "gateway.log"
    proc, base, _ = start_gateway(dict(os.environ, AUTH_URL=stack["auth"]), [], {"USER_MAX_ACTIVE_JOBS": "1"}, log)
    yield base
    proc.terminate()
    proc.wait(30)


def _drop(page: Page, target: str, files: list[Path]) -> None:
    """Several files dropped on `target` as a person would drag them from their file manager."""
    data = [{"name": f.name, "b64": base64.b64encode(f.read_bytes()).decode()} for f in files]
    transfer = page.evaluate_handle("""files => {
        const transfer = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
            transfer.items.add(new File([bytes], f.name, { type: "video/mp4" }));
        }
        return transfer;
    }""", data)
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(target, event, {"dataTransfer": transfer})


def test_many_files_wait_for_the_quota_and_all_convert(browser, one_job_gateway, media, tmp_path):
    """Two files chosen at once, one more dropped while they upload, with room for one unfinished job: the
    queue meets 429 quota_exceeded, waits (until a job ends or Retry-After), goes on, and all three convert."""
    files = []
    for name in ("first take.mp4", "second take.mp4", "dropped take.mp4"):  # new bytes each: no dedup
        files.append(tmp_path / name)
        files[-1].write_bytes(unique_mp4(media["short"].read_bytes()))
    user = Client(one_job_gateway).signed_up()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(30_000)
    page = context.new_page()
    refused, in_flight, most = [], set(), [0]

    def started(request):
        if "/upload" in request.url and request.method in ("POST", "PATCH"):
            in_flight.add(request)
            most[0] = max(most[0], len(in_flight))

    def answered(response):
        in_flight.discard(response.request)  # its answer's head is in: the page may start the next one
        if response.status == 429:
            refused.append((response.request.method, response.url))

    page.on("request", started)
    page.on("response", answered)
    page.on("requestfailed", lambda request: in_flight.discard(request))
    try:
        page.goto(one_job_gateway + "/")
        log_in(page, user)
        page.get_by_label("Video file").set_input_files(files[:2])
        expect(page.locator("#drop-hint")).to_have_text("Chosen: 2 files")
        page.get_by_role("button", name="Convert").click()
        _drop(page, "#drop", files[2:])
        expect(page.locator("#drop-hint")).to_have_text("Chosen: dropped take.mp4")
        page.get_by_role("button", name="Convert").click()
        summary = page.locator("#upload-summary")
        expect(summary).to_contain_text("waiting for a free place", timeout=LONG)
        expect(page.locator(".upload[data-state=held]")).to_have_count(1)
        expect(page.locator("#jobs > li")).not_to_have_count(0)  # the admitted file's job, for the picture
        shot(page, "12-many-files-waiting")  # docs/webapp-uploads.png
        expect(summary).to_have_text("3 of 3 uploaded, 0 failed.", timeout=3 * LONG)
        for path in files:
            item = job(page, path.name)
            expect(item.get_by_role("status")).to_have_text(re.compile("^done"), timeout=LONG)
            expect(page.locator(".upload", has_text=path.name)).to_contain_text("uploaded")
        assert refused and all(method == "POST" for method, _ in refused), refused  # the queue had to wait
        assert most[0] <= 2, most  # at most two uploads at a time
        shot(page, "13-many-files-done")
    finally:
        context.close()
    jobs = requests.get(f"{one_job_gateway}/jobs", headers=user.auth, timeout=10).json()["jobs"]
    assert sorted(j["filename"] for j in jobs if j["status"] == "done") == sorted(f.name for f in files), jobs
