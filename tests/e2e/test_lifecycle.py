"""The life of a job after its upload: live progress and events, cancel, delete."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time

import pytest
import requests
import sseclient

from services.common.storage import files, job_records
from devkit.client import Client
from devkit.media import make_media
from devkit.privstack import wait_until
from tests.helpers import stored_job


@pytest.fixture
def user(stack):
    # One per test: the same file uploaded again by the same user would be reused (done at once, dedup).
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def ten_minutes(ten_minute_video):
    return ten_minute_video


@pytest.fixture(scope="module")
def half_hour(ten_minute_video, tmp_path_factory):
    """The 10-minute video three times over (stream copies: made in a second). Long enough that a stream
    looking every 0.5 s sees several progress values on any machine: the 10-minute one converts in ~2.5 s
    on a fast one, where the converter writes only ~3 values (one per 0.5 s report after its first second)
    and a look may fall after two of them."""
    folder = tmp_path_factory.mktemp("half_hour")
    listing = folder / "parts.txt"
    listing.write_text(f"file '{ten_minute_video}'\n" * 3)
    path = folder / "lecture-30min.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("short") / "short.mp4", seconds=2)


def _upload(user, path) -> str:
    response = user.upload(path)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _events(user, job_id, **headers):
    response = requests.get(f"{user.base}/jobs/{job_id}/events", headers={**user.auth, **headers}, stream=True,
                            timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response, sseclient.SSEClient(response)


def _status(user, job_id) -> str:
    return user.job(job_id).json()["status"]


def _count(collection, query: dict) -> int:
    # find, not count_documents: the MongoDB stand-in cannot aggregate over GridFS chunks
    return len(list(collection.find(query, {"files_id": 1})))


def _stored(job_id: str) -> dict[str, int]:
    """Every file and chunk of the job in storage (its video, its MP3s, finished or not)."""
    job = job_records.get_job(job_id)
    mp3s = files.results()
    mp3_ids = {f["_id"] for f in mp3s.files.find({"metadata.job_id": job_id}, {"_id": 1})}
    mp3_ids |= {i for i in (job.mp3_id, job.pending_mp3_id) if i} if job else set()
    video = files.videos()
    video_id = job.video_id if job else None
    return {"video_files": _count(video.files, {"_id": video_id}),
            "video_chunks": _count(video.chunks, {"files_id": video_id}),
            "mp3_files": len([i for i in mp3_ids if mp3s.files.find_one({"_id": i}, {"_id": 1})]),
            "mp3_chunks": sum(_count(mp3s.chunks, {"files_id": i}) for i in mp3_ids)}


def test_progress_rises_and_events_follow_the_job_to_its_end(user, half_hour):
    job_id = _upload(user, half_hour)
    response, client = _events(user, job_id)
    views, ids = [], []
    for event in client.events():
        views.append(json.loads(event.data))
        ids.append(int(event.id))
    response.close()
    assert views[0]["status"] in ("queued", "converting")
    assert views[-1]["status"] == "done" and views[-1]["download_url"]
    assert ids == sorted(set(ids)), ids  # one event per change, each newer than the last
    progress = [v["progress"] for v in views if v["status"] == "converting" and v["progress"] is not None]
    assert len(progress) >= 3 and progress == sorted(progress) and 0 < progress[0] < progress[-1] < 100, progress
    assert all(v["eta_seconds"] is not None for v in views if v["progress"]), views
    assert views[-1]["progress"] is None and views[-1]["expires_at"]
    # Resuming from the last event id repeats nothing; from an older one it sends the current view.
    response, client = _events(user, job_id, **{"Last-Event-ID": str(ids[-1])})
    assert list(client.events()) == []
    response, client = _events(user, job_id, **{"Last-Event-ID": str(ids[0])})
    assert [json.loads(e.data)["status"] for e in client.events()] == ["done"]


def _converter_children(stack) -> list[int]:
    converter = int((stack["home"] / "run" / "converter.pid").read_text())
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            if int(stat.rsplit(")", 1)[1].split()[1]) == converter and "ffmpeg" in open(f"/proc/{pid}/cmdline").read():
                children.append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return children


def test_cancel_a_converting_and_a_queued_job(stack, user, ten_minutes, short):
    converting, queued = _upload(user, ten_minutes), _upload(user, short)
    wait_until(lambda: _converter_children(stack), "ffmpeg converting the long video", 60, 0.05)
    assert _status(user, queued) == "queued"

    response = requests.post(f"{user.base}/jobs/{queued}/cancel", headers=user.auth, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    cancelled_at = time.monotonic()
    response = requests.post(f"{user.base}/jobs/{converting}/cancel", headers=user.auth, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    wait_until(lambda: not _converter_children(stack), "ffmpeg stopped", 2)
    assert time.monotonic() - cancelled_at < 2

    time.sleep(2)  # the converter picks up the queued job's message: it must not convert it
    for job_id in (converting, queued):
        job = job_records.get_job(job_id)
        assert job.status == "cancelled" and job.mp3_id is None
        assert {k: v for k, v in _stored(job_id).items() if k.startswith("mp3")} == {"mp3_files": 0, "mp3_chunks": 0}
        assert not list(stack["mail"].glob("*")) or all(job_id not in p.read_text(errors="replace")
                                                         for p in stack["mail"].glob("*"))
    assert "converting" not in job_records.get_job(queued).times
    again = requests.post(f"{user.base}/jobs/{queued}/cancel", headers=user.auth, timeout=10)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_a_finished_job_cannot_be_cancelled(user, short):
    job_id = _upload(user, short)
    assert user.wait_job(job_id)["status"] == "done"
    response = requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10)
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_finished"


@pytest.mark.parametrize("when", ["done", "converting"])
def test_delete_removes_every_stored_byte(stack, user, ten_minutes, short, when):
    if when == "done":
        job_id = _upload(user, short)
        mp3_id = user.wait_job(job_id)["mp3_id"]
    else:
        job_id, mp3_id = _upload(user, ten_minutes), None
        wait_until(lambda: _converter_children(stack), "ffmpeg converting", 60, 0.05)
    before = _stored(job_id)
    assert before["video_files"] == 1 and before["video_chunks"] > 0
    response = requests.delete(f"{user.base}/jobs/{job_id}", headers=user.auth, timeout=10)
    assert response.status_code == 204
    assert user.job(job_id).status_code == 404
    assert requests.get(f"{user.base}/jobs/{job_id}/events", headers=user.auth, timeout=10).status_code == 404
    if mp3_id:
        assert user.download(mp3_id).status_code == 404
    wait_until(lambda: not _converter_children(stack), "ffmpeg stopped", 2)
    time.sleep(1)  # anything a stopping converter was still writing is gone by now
    assert _stored(job_id) == {"video_files": 0, "video_chunks": 0, "mp3_files": 0, "mp3_chunks": 0}
    mp3s = files.results()
    assert _count(mp3s.files, {"metadata.job_id": job_id}) == 0


def test_only_the_owner_follows_cancels_or_deletes(stack, user, short):
    job_id = _upload(user, short)
    stranger = Client(stack["gateway"]).signed_up()
    for method, path in (("get", "events"), ("post", "cancel"), ("delete", "")):
        url = f"{user.base}/jobs/{job_id}/{path}".rstrip("/")
        response = getattr(requests, method)(url, headers=stranger.auth, timeout=10)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert getattr(requests, method)(url, timeout=10).status_code == 401
    assert user.job(job_id).status_code == 200


def test_live_streams_are_bounded_per_process(stack):
    """EVENT_STREAMS_MAX places, EVENT_STREAMS_PER_USER of them per user (every path that gives a place
    back: tests/security/test_event_streams.py)."""
    limit = int(os.environ.get("EVENT_STREAMS_MAX", "4"))
    per_user = int(os.environ.get("EVENT_STREAMS_PER_USER", "2"))
    users = [Client(stack["gateway"]).signed_up() for _ in range(-(-limit // per_user) + 1)]
    jobs = [(user, _queued_job_of(user)) for user in users]
    holders = [(user, job_id) for user, job_id in jobs[:-1] for _ in range(per_user)][:limit]
    opened = [_events(user, job_id)[0] for user, job_id in holders]
    try:
        user, job_id = jobs[-1]
        refused = requests.get(f"{user.base}/jobs/{job_id}/events", headers=user.auth, timeout=10)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "too_busy"
        assert refused.headers["Retry-After"]
        assert requests.get(f"{user.base}/healthz", timeout=5).status_code == 200
    finally:
        for response in opened:
            response.close()


def _queued_job_of(user) -> str:
    """A queued job of the user's that nothing converts (published: the outbox leaves it alone)."""
    claims = json.loads(base64.urlsafe_b64decode(user.token.split(".")[1] + "=="))
    return stored_job(owner=claims["sub"], published=True).id
