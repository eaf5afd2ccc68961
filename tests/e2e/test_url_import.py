"""Import by URL, end to end: POST /jobs with a source_url served by a local HTTP server (127.0.0.1; the
stack allows only 127.0.0.1/32, so 127.0.0.2 stands for a forbidden address), fetched by the converter."""
from __future__ import annotations

import time

import pytest
import requests

from devkit.client import Client
from devkit.media import duration_of, make_media
from devkit.metrics import metric_value
from devkit.source_server import (chunked_route, failing_first, file_route, lying_length_route, redirect_route,
                                  source_server, status_route, trickle_route)


@pytest.fixture(scope="module")
def user(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = make_media(tmp_path_factory.mktemp("import") / "talk.mp4", seconds=4)
    return path, path.read_bytes()


@pytest.fixture(scope="module")
def server():
    with source_server() as running:
        yield running


def submit(user: Client, body: dict, **headers) -> requests.Response:
    return requests.post(f"{user.base}/jobs", json=body, headers={**user.auth, **headers}, timeout=30)


def imported(user: Client, url: str, timeout: float = 60, **fields) -> dict:
    response = submit(user, {"source_url": url, **fields})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "fetching" and body["source_url"] == url
    assert response.headers["Location"] == f"/jobs/{body['job_id']}"
    return user.wait_job(body["job_id"], timeout)


def test_a_video_at_a_url_becomes_a_job_done(stack, user, server, clip, tmp_path):
    path, data = clip
    fetched_before = metric_value(stack["metrics"]["converter"], "converter_imports_total", result="fetched") or 0
    server.routes["/media/talk.mp4"] = file_route(data)
    job = imported(user, server.url("/media/talk.mp4?token=secret"), format="opus", bitrate="64k")
    assert job["status"] == "done", job
    assert job["filename"] == "talk.mp4" and job["size"] == len(data)
    assert job["options"]["format"] == "opus" and job["fetch"] is None
    out = tmp_path / "talk.opus"
    out.write_bytes(user.download(job["mp3_id"]).content)
    assert abs(duration_of(out) - duration_of(path)) < 0.5
    assert metric_value(stack["metrics"]["converter"], "converter_imports_total", result="fetched") > fetched_before
    span = _wait(lambda: _fetch_span(stack["otlp"], job["job_id"]), lambda found: found is not None)
    assert span["service"] == "converter" and span["attributes"]["server.address"] == "127.0.0.1"
    assert "secret" not in str(span)  # the host only: a URL's query may carry a credential


def _fetch_span(otlp, job_id: str) -> dict | None:
    """The `fetch source` span of the job's trace (the one that also holds the POST /jobs request)."""
    for span in otlp.spans_with("server.address", "127.0.0.1"):
        if span["name"] == "fetch source" and any(job_id in str(other["attributes"])
                                                  for other in otlp.trace(span["trace_id"])):
            return span
    return None


def test_an_import_counts_as_an_upload_in_the_quotas(user, server, clip):
    def usage():
        return requests.get(f"{user.base}/me", headers=user.auth, timeout=10).json()["usage"]

    server.routes["/quota.mp4"] = file_route(clip[1] + b"\0")  # other bytes: not shared with another job
    before = usage()
    job = imported(user, server.url("/quota.mp4"))
    after = usage()
    assert job["status"] == "done", job
    assert after["uploads_24h"] == before["uploads_24h"] + 1
    assert after["stored_bytes"] >= before["stored_bytes"] + len(clip[1])


def test_a_redirect_chain_is_followed(user, server, clip):
    server.routes["/r1"] = redirect_route("/r2", 301)
    server.routes["/r2"] = redirect_route(server.url("/r3"), 307)
    server.routes["/r3"] = redirect_route("/media/chain.mp4", 302)
    server.routes["/media/chain.mp4"] = file_route(clip[1])
    job = imported(user, server.url("/r1"))
    assert job["status"] == "done", job
    assert server.hits("/media/chain.mp4") == 1


def test_a_redirect_to_a_forbidden_address_fails_and_reaches_nothing(user, server):
    with source_server("127.0.0.2") as forbidden:
        forbidden.routes["/latest/meta-data"] = status_route(200, b"secret", "application/octet-stream")
        server.routes["/to-private"] = redirect_route(forbidden.url("/latest/meta-data"))
        job = imported(user, server.url("/to-private"))
        assert job["status"] == "failed", job
        assert "non-public address (127.0.0.2)" in job["reason"]
        assert forbidden.requests == []


def test_a_forbidden_address_is_refused_at_submit(user):
    for url in ("http://127.0.0.2:9/video.mp4", "http://169.254.169.254/latest/meta-data",
                "ftp://127.0.0.1/video.mp4", "http://user:pw@127.0.0.1/video.mp4"):
        response = submit(user, {"source_url": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"]["code"] == "invalid_source_url"
    assert submit(user, {"format": "mp3"}).json()["error"]["code"] == "invalid_source_url"


def test_bad_options_are_refused_before_any_fetch(user, server):
    response = submit(user, {"source_url": server.url("/never"), "format": "wma"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_option"
    assert server.hits("/never") == 0


def test_a_trickle_fails_on_the_whole_fetch_deadline(user, server):
    server.routes["/slow.mp4"] = trickle_route(b"\0\0\0\x18ftypmp42" + b"\0" * 600, declared=10_000_000)
    job = imported(user, server.url("/slow.mp4"))
    assert job["status"] == "failed", job
    assert "did not arrive within 5 s" in job["reason"]


def test_a_declared_length_over_the_limit_fails_before_reading(user, server):
    server.routes["/huge.mp4"] = lying_length_route(10 ** 12)
    job = imported(user, server.url("/huge.mp4"))
    assert job["status"] == "failed", job
    assert "1000000000000 bytes, larger than the limit" in job["reason"]


def test_an_html_page_is_not_a_video(user, server):
    server.routes["/page"] = status_route(200, b"<!doctype html><html><body>Watch here</body></html>", "text/html")
    server.routes["/disguised"] = status_route(200, b"<!DOCTYPE html>\n<html>" + b" " * 600, "video/mp4")
    for path in ("/page", "/disguised"):
        job = imported(user, server.url(path))
        assert job["status"] == "failed", job
        assert "not a video" in job["reason"]


def test_a_404_fails_at_once(user, server):
    job = imported(user, server.url("/gone.mp4"))
    assert job["status"] == "failed", job
    assert "HTTP 404" in job["reason"]
    assert server.hits("/gone.mp4") == 1  # a permanent failure is not retried


def test_a_503_is_retried_then_done(user, server, clip):
    server.routes["/busy.mp4"] = failing_first(2, file_route(clip[1]))
    job = imported(user, server.url("/busy.mp4"))
    assert job["status"] == "done", job
    assert server.hits("/busy.mp4") == 3


def test_a_source_that_keeps_failing_ends_failed_with_its_last_error(user, server):
    server.routes["/down.mp4"] = status_route(502, b"bad gateway")
    job = imported(user, server.url("/down.mp4"))
    assert job["status"] == "failed", job
    assert job["reason"] == "could not import the video: the source answered HTTP 502 Bad Gateway"
    assert server.hits("/down.mp4") == 4  # the first attempt and RETRY_DELAYS' three retries


def test_a_chunked_answer_without_length_is_fetched(user, server, clip):
    data = clip[1]
    server.routes["/chunked.mp4"] = chunked_route(data, 1)
    job = imported(user, server.url("/chunked.mp4"))
    assert job["status"] == "done", job


def test_cancel_while_fetching_stops_the_fetch(stack, user, server):
    from services.common.storage import files, job_records

    server.routes["/long.mp4"] = trickle_route(b"\0\0\0\x18ftypmp42" + b"\0" * 600, declared=10_000_000, every=0.05)
    response = submit(user, {"source_url": server.url("/long.mp4")})
    job_id = response.json()["job_id"]
    seen = _wait(lambda: user.job(job_id).json(), lambda view: (view["fetch"] or {}).get("bytes", 0) > 600)
    assert seen["status"] == "fetching" and seen["fetch"]["total"] == 10_000_000
    cancelled = requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    video_id = job_records.get_job(job_id).video_id
    time.sleep(2.5)  # the fetcher notices within a progress interval and removes its partial file
    assert files.file_info(files.videos(), video_id) is None
    assert list(files.chunks_from(files.videos(), video_id, 0)) == []


def test_live_events_show_the_fetch_progress_then_the_cancel(user, server):
    import json

    server.routes["/events.mp4"] = trickle_route(b"\0\0\0\x18ftypmp42" + b"\0" * 600, declared=10_000_000, every=0.05)
    job_id = submit(user, {"source_url": server.url("/events.mp4")}).json()["job_id"]
    seen: list[dict] = []
    with requests.get(f"{user.base}/jobs/{job_id}/events", headers=user.auth, stream=True, timeout=15) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if not line.startswith("data: "):
                continue
            seen.append(json.loads(line[len("data: "):]))
            if len([view for view in seen if view["fetch"]]) == 2:  # two progress writes: cancel now
                requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10)
            if seen[-1]["status"] == "cancelled":
                break
    progress = [view["fetch"]["bytes"] for view in seen if view["fetch"]]
    assert seen[0]["status"] == "fetching" and len(progress) >= 2 and progress == sorted(progress)
    assert seen[-1]["status"] == "cancelled" and seen[-1]["fetch"] is None


def test_delete_while_fetching_removes_everything(user, server):
    from services.common.storage import files, job_records

    server.routes["/deleted.mp4"] = trickle_route(b"\0\0\0\x18ftypmp42" + b"\0" * 600, declared=10_000_000,
                                                  every=0.05)
    job_id = submit(user, {"source_url": server.url("/deleted.mp4")}).json()["job_id"]
    video_id = job_records.get_job(job_id).video_id
    _wait(lambda: user.job(job_id).json(), lambda view: (view["fetch"] or {}).get("bytes", 0) > 600)
    assert requests.delete(f"{user.base}/jobs/{job_id}", headers=user.auth, timeout=10).status_code == 204
    time.sleep(2.5)  # the fetcher's next progress write finds no job: it stops and removes its partial file
    assert user.job(job_id).status_code == 404
    assert files.file_info(files.videos(), video_id) is None
    assert list(files.chunks_from(files.videos(), video_id, 0)) == []


def test_idempotency_key_answers_the_first_job(user, server, clip):
    server.routes["/once.mp4"] = file_route(clip[1])
    first = submit(user, {"source_url": server.url("/once.mp4")}, **{"Idempotency-Key": "import-once-1"})
    again = submit(user, {"source_url": server.url("/once.mp4")}, **{"Idempotency-Key": "import-once-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["Idempotent-Replayed"] == "true"


def _wait(read, ready, timeout: float = 10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = read()
        if ready(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout} s: {value}")
