"""A page on another origin uploads to the gateway with Uppy (@uppy/core + @uppy/tus) in Chromium, through
CORS: paused in the middle of a PATCH and resumed, it goes on from the offset the server reports, the job
completes and the MP3 downloads. A page on an origin not in CORS_ALLOWED_ORIGINS cannot upload at all.
Preflights of the streaming routes pass the gateway's gunicorn worker (raw requests, same gateway)."""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from devkit.client import Client
from devkit.media import make_media
from devkit.stack import start_gateway

from .conftest import SHOTS, static_site

UPPY = Path(__file__).resolve().parent / "uppy"
CHUNK = 1024 * 1024  # bytes per PATCH: the pause comes in the middle of the second one
LONG = 90_000  # ms: an upload, then a conversion on a busy machine (waits, not timing assertions)


def _build_page() -> None:
    """The pinned packages (package-lock.json) installed once, then the page bundled with esbuild."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed (Debian package 'npm'); .ci/run installs it")
    if not (UPPY / "node_modules" / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=UPPY, check=True, timeout=600)
    subprocess.run([npm, "run", "--silent", "build"], cwd=UPPY, check=True, timeout=120)


@pytest.fixture(scope="module")
def sites(stack, tmp_path_factory):
    """Two page origins (the Uppy page on two ports) and a gateway of our own that allows only the first."""
    _build_page()
    with ExitStack() as stack_of:
        allowed, other = (stack_of.enter_context(static_site(UPPY)) for _ in range(2))
        log = tmp_path_factory.mktemp("cors") / "gateway.log"
        proc, gateway, _ = start_gateway(dict(os.environ, AUTH_URL=stack["auth"]), [],
                                         {"CORS_ALLOWED_ORIGINS": f"http://example.invalid,{allowed}"}, log)
        try:
            yield {"allowed": allowed, "other": other, "gateway": gateway}
        finally:
            proc.terminate()
            proc.wait(30)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A real video of about 6 MB: several chunks."""
    path = make_media(tmp_path_factory.mktemp("uppy") / "street scene.mp4", seconds=24,
                      video="testsrc2=size=640x360:rate=25")
    assert path.stat().st_size > 4 * CHUNK
    return path


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.console = []
    page.on("console", lambda msg: page.console.append(msg.text))
    yield page
    context.close()


def _record_tus(page) -> list[dict]:
    """Every tus request the page ends (answered or failed), in order, with the offsets on both sides."""
    seen: list[dict] = []

    def answered(request):
        response = request.response()
        seen.append({"method": request.method, "url": request.url, "offset": request.headers.get("upload-offset"),
                     "status": response.status if response else None,
                     "answer_offset": response.headers.get("upload-offset") if response else None,
                     "location": response.headers.get("location") if response else None})

    def failed(request):
        seen.append({"method": request.method, "url": request.url, "offset": request.headers.get("upload-offset"),
                     "status": None, "failure": request.failure})

    page.tus_started = []  # every tus request the page began, ended or not
    page.on("request", lambda r: "/uploads/" in r.url and page.tus_started.append(r))
    page.on("requestfinished", lambda r: "/uploads/" in r.url and answered(r))
    page.on("requestfailed", lambda r: "/uploads/" in r.url and failed(r))
    return seen


def _all_ended(page, seen: list[dict]) -> None:
    """Until every tus request the page began has ended: the PATCH cut by the pause reports its end
    asynchronously, and must count as before the resume, not after it."""
    for _ in range(600):
        if len(seen) == len(page.tus_started):
            return
        page.wait_for_timeout(50)  # Playwright delivers the pending events while it waits
    pytest.fail(f"tus requests still open 30 s after the pause: {page.tus_started[len(seen):]}")


def _start(page, site: str, gateway: str, token: str, video: Path, pause_after: int) -> None:
    page.goto(f"{site}/index.html")
    page.set_input_files("#file", str(video))
    page.evaluate("config => window.uppyTest.start(config)",
                  {"endpoint": f"{gateway}/uploads/", "token": token, "chunkSize": CHUNK, "pauseAfter": pause_after})


def test_uppy_on_an_allowed_origin_resumes_from_the_servers_offset(page, sites, video):
    user = Client(sites["gateway"]).signed_up()
    seen = _record_tus(page)
    _start(page, sites["allowed"], sites["gateway"], user.token, video, pause_after=CHUNK + CHUNK // 2)
    page.wait_for_function("window.uppyTest.state.paused")  # the PATCH in flight is cut; the server keeps
    created = next(r for r in seen if r["method"] == "POST")
    assert created["status"] == 201, seen
    upload_url = requests.compat.urljoin(f"{sites['gateway']}/uploads/", created["location"])
    _all_ended(page, seen)
    before_resume = len(seen)
    page.evaluate("window.uppyTest.resume()")
    page.wait_for_function("window.uppyTest.state.jobId !== null || window.uppyTest.state.error !== null",
                           timeout=LONG)
    state = page.evaluate("window.uppyTest.state")
    assert state["error"] is None and state["jobId"], (state, page.console)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "uppy-other-origin.png"))

    first = [r for r in seen[:before_resume] if r["method"] == "PATCH"]
    assert first[0]["offset"] == "0" and first[0]["status"] == 204, seen  # the first chunk went in whole
    after = [r for r in seen[before_resume:] if r["method"] in ("HEAD", "PATCH")]
    assert not any(r["method"] == "POST" for r in seen[before_resume:]), seen  # no second upload
    assert after[0]["method"] == "HEAD" and after[0]["status"] == 200, after
    # each PATCH after the resume starts where the server last said its copy ends, never at zero
    server_offset = None
    for request in after:
        if request["method"] == "PATCH" and request["status"] == 204:
            assert request["offset"] == server_offset, (request, after)
        server_offset = request.get("answer_offset") or server_offset
    resumed_at = int(next(r for r in after if r["method"] == "PATCH")["offset"])
    assert CHUNK <= resumed_at < video.stat().st_size, after
    assert int(server_offset) == video.stat().st_size

    head = requests.head(upload_url, headers={**user.auth, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.headers["Job-Id"] == state["jobId"]
    view = user.wait_job(state["jobId"], timeout=LONG / 1000)
    assert view["status"] == "done", view
    mp3 = user.download(view["mp3_id"])
    assert mp3.status_code == 200 and len(mp3.content) > 10_000
    assert mp3.content[:3] == b"ID3" or (mp3.content[0] == 0xFF and mp3.content[1] & 0xE0 == 0xE0)


def test_uppy_on_another_origin_is_blocked_by_the_browser(page, sites, video):
    user = Client(sites["gateway"]).signed_up()
    seen = _record_tus(page)
    _start(page, sites["other"], sites["gateway"], user.token, video, pause_after=0)
    page.wait_for_function("window.uppyTest.state.error !== null", timeout=LONG)
    assert any("blocked by CORS policy" in line for line in page.console), page.console
    assert not any(r.get("status") for r in seen), seen  # nothing the page sent got through to an answer
    me = requests.get(f"{sites['gateway']}/me", headers=user.auth, timeout=10).json()
    assert me["usage"]["uploads_24h"] == 0, me  # the preflight failed: the creation was never sent


def _preflight(url: str, origin: str, method: str, headers: str) -> requests.Response:
    return requests.options(url, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                          "Access-Control-Request-Headers": headers}, timeout=10)


def test_preflights_of_streaming_routes_pass_the_worker_without_a_token(sites):
    """POST /upload and tus PATCH stream their bodies (the worker hands them a thread at once); their
    preflights carry no body and no token and are answered like any other."""
    gateway, allowed = sites["gateway"], sites["allowed"]
    for path, method in (("/upload", "POST"), ("/uploads/", "POST"), ("/uploads/abc123", "PATCH"),
                         ("/jobs/abc123", "DELETE"), ("/jobs", "GET")):
        answer = _preflight(gateway + path, allowed, method, "authorization,content-type,idempotency-key")
        assert answer.status_code == 204, (path, answer.status_code, answer.text)
        assert answer.headers["Access-Control-Allow-Origin"] == allowed
        assert method in answer.headers["Access-Control-Allow-Methods"]
        assert "Origin" in answer.headers["Vary"]
        refused = _preflight(gateway + path, sites["other"], method, "authorization")
        assert not [h for h in refused.headers if h.lower().startswith("access-control-")], (path, refused.headers)
    answer = requests.get(f"{gateway}/jobs", headers={"Origin": allowed}, timeout=10)
    assert answer.status_code == 401 and answer.headers["Access-Control-Allow-Origin"] == allowed  # errors too
    assert "Retry-After" in answer.headers["Access-Control-Expose-Headers"]


def test_the_default_gateway_sends_no_cors_headers(stack, sites):
    for answer in (_preflight(f"{stack['gateway']}/uploads/", sites["allowed"], "POST", "tus-resumable"),
                   requests.get(f"{stack['gateway']}/jobs", headers={"Origin": sites["allowed"]}, timeout=10)):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers
