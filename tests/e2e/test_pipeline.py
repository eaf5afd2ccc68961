"""The whole system as a user sees it: register, login, upload, wait, download, email."""
from __future__ import annotations

import subprocess

import pytest
import requests

from devkit.client import Client
from devkit.media import codec_of, duration_of, make_media
from tests.helpers import wait_mail


@pytest.fixture(scope="module")
def user(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def other_user(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media") / "holiday clip.mp4", seconds=6)


@pytest.fixture(scope="module")
def converted(user, video):
    response = user.upload(video)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"job_id", "status_url"}
    assert body["status_url"] == f"/jobs/{body['job_id']}"
    return user.wait_job(body["job_id"])


def test_video_becomes_a_downloadable_mp3_with_the_same_duration(user, video, converted, tmp_path):
    assert converted["status"] == "done", converted
    assert converted["reason"] is None
    assert converted["download_url"] == f"/download?fid={converted['mp3_id']}"
    response = user.download(converted["mp3_id"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert 'filename="holiday clip.mp3"' in response.headers["Content-Disposition"]
    out = tmp_path / "out.mp3"
    out.write_bytes(response.content)
    assert codec_of(out) == "mp3"
    assert abs(duration_of(out) - duration_of(video)) < 0.5


def test_seed_style_download_with_range(user, converted):
    whole = user.download(converted["mp3_id"]).content
    part = user.download(converted["mp3_id"], Range="bytes=100-1099")
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    assert part.content == whole[100:1100]
    tail = user.download(converted["mp3_id"], Range="bytes=-10")
    assert tail.status_code == 206 and tail.content == whole[-10:]
    beyond = user.download(converted["mp3_id"], Range=f"bytes={len(whole)}-")
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(whole)}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"


def test_download_honours_if_none_match(user, converted):
    first = user.download(converted["mp3_id"])
    etag = first.headers["ETag"]
    cached = user.download(converted["mp3_id"], **{"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["ETag"] == etag
    assert user.download(converted["mp3_id"], **{"If-None-Match": 'W/' + etag}).status_code == 304
    changed = user.download(converted["mp3_id"], **{"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content


def test_ready_email_names_the_job_and_the_mp3(stack, converted):
    mails = wait_mail(stack["mail"], converted["job_id"])
    assert len(mails) == 1
    body = mails[0].get_content()
    assert "ready" in mails[0]["Subject"]
    assert converted["job_id"] in body
    assert converted["link"] in body  # signed, token-free (tests/e2e/test_links_webhooks.py)


def test_non_video_fails_with_a_reason_and_an_email(stack, user, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video, just text renamed to .mp4\n" * 50)
    response = user.upload(notes)
    assert response.status_code == 202
    job = user.wait_job(response.json()["job_id"])
    assert job["status"] == "failed"
    assert "not a video" in job["reason"]
    assert job["mp3_id"] is None and job["download_url"] is None
    mails = wait_mail(stack["mail"], job["job_id"])
    assert len(mails) == 1
    assert "failed" in mails[0]["Subject"]
    assert job["reason"] in mails[0].get_content()


def test_video_without_audio_fails_with_reason(user, tmp_path):
    silent = make_media(tmp_path / "silent.mp4", seconds=2, audio=None)
    job = user.wait_job(user.upload(silent).json()["job_id"])
    assert job["status"] == "failed"
    assert job["reason"] == "the file has no audio track"


def test_another_user_gets_404_for_job_and_download(user, other_user, converted):
    job = other_user.job(converted["job_id"])
    assert job.status_code == 404 and job.json()["error"]["code"] == "not_found"
    download = other_user.download(converted["mp3_id"])
    assert download.status_code == 404 and download.json()["error"]["code"] == "not_found"
    listed = requests.get(f"{other_user.base}/jobs", headers=other_user.auth, timeout=10).json()
    assert converted["job_id"] not in [j["job_id"] for j in listed["jobs"]]


def test_jobs_lists_only_your_own_newest_first(user, converted):
    body = requests.get(f"{user.base}/jobs", headers=user.auth, timeout=10).json()
    ids = [j["job_id"] for j in body["jobs"]]
    assert converted["job_id"] in ids
    created = [j["created_at"] for j in body["jobs"]]
    assert created == sorted(created, reverse=True)
    done = requests.get(f"{user.base}/jobs", params={"status": "done"}, headers=user.auth, timeout=10).json()
    assert all(j["status"] == "done" for j in done["jobs"])


def test_mp3_source_is_copied_not_reencoded(user, tmp_path):
    source = tmp_path / "song.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=3",
                    "-c:a", "libmp3lame", "-b:a", "128k", str(source)], check=True)
    job = user.wait_job(user.upload(source).json()["job_id"])
    assert job["status"] == "done"
    out = tmp_path / "out.mp3"
    out.write_bytes(user.download(job["mp3_id"]).content)
    # A copy keeps the source's 128k rather than the configured 192k.
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=bit_rate", "-of", "csv=p=0", str(out)],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert int(probe) == 128000
