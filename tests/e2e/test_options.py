"""Output options through the whole stack: form fields → 400 or a job with `options` → the converter →
a download in the asked format, measured with ffprobe."""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from devkit.client import Client
from devkit.media import make_media


@pytest.fixture(scope="module")
def user(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("opts") / "Concert night.mp4", seconds=4)


def _stored_videos(name: str) -> int:
    from services.common.storage import files

    return len(list(files.videos().files.find({"filename": name}, {"_id": 1})))  # the stand-in cannot count_documents


def test_bad_options_are_400_before_anything_is_stored(user, clip):
    for fields, field in (({"bitrate": "999k"}, "bitrate"), ({"format": "opus", "cover": "true"}, "cover"),
                          ({"start": "10", "end": "2"}, "end"), ({"title": "t" * 201}, "title")):
        name = f"bad-{uuid.uuid4().hex}.mp4"
        response = user.upload(clip, name=name, options=fields)
        error = response.json()["error"]
        assert (response.status_code, error["code"]) == (400, "invalid_option"), response.text
        assert field in error["message"], error
        assert _stored_videos(name) == 0
    # A bad field after the file: the file was on its way into storage; it is removed again.
    name = f"late-{uuid.uuid4().hex}.mp4"
    with open(clip, "rb") as f:
        body = MultipartEncoder([("file", (name, f, "video/mp4")), ("quality", "11")])
        response = requests.post(f"{user.base}/upload", data=body, timeout=30,
                                 headers={**user.auth, "Content-Type": body.content_type})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_option")
    assert "quality" in response.json()["error"]["message"] and _stored_videos(name) == 0
    # Hostile field shapes: the same option twice, bytes that are not text, a flood of fields.
    for parts, words in (([("bitrate", "128k"), ("bitrate", "320k")], "given twice"),
                         ([("title", (None, b"\xff\xfe", "text/plain"))], "not UTF-8"),
                         ([(f"x{n}", "1") for n in range(40)], "more than 32")):
        name = f"shape-{uuid.uuid4().hex}.mp4"
        with open(clip, "rb") as f:
            body = MultipartEncoder(parts + [("file", (name, f, "video/mp4"))])
            response = requests.post(f"{user.base}/upload", data=body, timeout=30,
                                     headers={**user.auth, "Content-Type": body.content_type})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_option"), response.text
        assert words in response.json()["error"]["message"] and _stored_videos(name) == 0
    # A format after the file may still make the fields before it valid: 320k at 22050 Hz is too much
    # for mp3 (the default), not for m4a.
    with open(clip, "rb") as f:
        body = MultipartEncoder([("bitrate", "320k"), ("sample_rate", "22050"), ("file", ("x.mp4", f, "video/mp4")),
                                 ("format", "m4a")])
        response = requests.post(f"{user.base}/upload", data=body, timeout=30,
                                 headers={**user.auth, "Content-Type": body.content_type})
    assert response.status_code == 202, response.text
    assert requests.get(f"{user.base}/jobs", headers=user.auth, timeout=10).json()["jobs"][0]["options"] == {
        "format": "m4a", "bitrate": "320k", "sample_rate": 22050}


def test_options_shape_the_download(user, clip, tmp_path):
    response = user.upload(clip, options={"format": "flac", "start": "1", "end": "00:00:03.5", "channels": "1",
                                          "artist": "Band", "cover": "true", "tus_client_extra": "ignored"})
    assert response.status_code == 202, response.text
    job = user.wait_job(response.json()["job_id"])
    assert job["status"] == "done", job
    assert job["options"] == {"format": "flac", "channels": 1, "start": 1.0, "end": 3.5, "artist": "Band",
                              "cover": True}
    assert job["audio_seconds"] == pytest.approx(2.5, abs=0.05)
    download = user.download(job["mp3_id"])
    assert download.headers["Content-Type"] == "audio/flac"
    assert 'filename="Concert night.flac"' in download.headers["Content-Disposition"]
    out = tmp_path / "out.flac"
    out.write_bytes(download.content)
    probe = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(out)]
    data = json.loads(subprocess.run(probe, check=True, capture_output=True, text=True).stdout)
    audio = [s for s in data["streams"] if s["codec_type"] == "audio"][0]
    assert (data["format"]["format_name"], audio["codec_name"], audio["channels"]) == ("flac", "flac", 1)
    assert abs(float(data["format"]["duration"]) - 2.5) <= 0.05
    tags = {k.lower(): v for k, v in data["format"]["tags"].items()}
    assert (tags["title"], tags["artist"]) == ("Concert night", "Band")  # title: the upload's name
    assert any(s["disposition"]["attached_pic"] for s in data["streams"] if s["codec_type"] == "video")


def test_options_the_media_cannot_satisfy_fail_the_job(user, clip):
    for fields, reason in (({"start": "30"}, "beyond the end of the media"), ({"audio_track": "2"}, "does not exist")):
        job = user.wait_job(user.upload(clip, options=fields).json()["job_id"])
        assert job["status"] == "failed" and reason in job["reason"], job


def test_trim_silence_shortens_the_download_and_its_recorded_length(user, tmp_path):
    padded = make_media(tmp_path / "Padded talk.mp4", seconds=7,
                        audio="aevalsrc=exprs='0.3*sin(440*2*PI*t)*between(t\\,2\\,5)':s=44100")
    job = user.wait_job(user.upload(padded, options={"trim_silence": "true", "silence_db": "-45"}).json()["job_id"])
    assert job["status"] == "done", job
    assert job["options"] == {"format": "mp3", "trim_silence": True, "silence_db": -45.0}
    assert job["audio_seconds"] == pytest.approx(3, abs=0.05), "the trimmed length, not the 7 s of the video"
    out = tmp_path / "out.mp3"
    out.write_bytes(user.download(job["mp3_id"]).content)
    probe = ["ffprobe", "-v", "error", "-show_format", "-of", "json", str(out)]
    printed = subprocess.run(probe, check=True, capture_output=True, text=True).stdout
    seconds = float(json.loads(printed)["format"]["duration"])
    assert seconds == pytest.approx(3, abs=0.1), seconds
