"""Presets through the whole stack: /me/presets (built in and a user's own, another user's 404, the
limit, a read key), and `preset=NAME` on multipart and tus uploads: the job shows the resolved options
and the result, read with ffprobe, is what the preset (and the fields overriding it) asked for."""
from __future__ import annotations

import base64
import json
import subprocess

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from devkit.client import Client
from devkit.media import make_media, unique_mp4
from devkit.metrics import metric_value

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def user(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def stereo_clip(tmp_path_factory):
    """A stereo video: a preset that asks for mono has something to change."""
    return make_media(tmp_path_factory.mktemp("presets") / "Talk.mp4", seconds=3, video="testsrc=size=160x120:rate=5",
                      extra=["-ac", "2"])


def _fresh(clip, tmp_path, name: str):
    """A copy of the clip with other bytes: it converts instead of reusing an earlier result."""
    path = tmp_path / name
    path.write_bytes(unique_mp4(clip.read_bytes()))
    return path


def _audio_of(data: bytes, tmp_path, suffix: str) -> dict:
    path = tmp_path / f"result.{suffix}"
    path.write_bytes(data)
    probe = ["ffprobe", "-v", "error", "-show_streams", "-select_streams", "a:0", "-of", "json", str(path)]
    return json.loads(subprocess.run(probe, check=True, capture_output=True, text=True).stdout)["streams"][0]


def _presets(user: Client, path: str = "", method: str = "GET", headers: dict | None = None,
             **kwargs) -> requests.Response:
    return requests.request(method, f"{user.base}/me/presets{path}", headers={**user.auth, **(headers or {})},
                            timeout=10, **kwargs)


def test_the_list_has_the_builtin_presets_first_then_the_users_own(stack):
    user = Client(stack["gateway"]).signed_up()
    listed = _presets(user).json()["presets"]
    assert [p["name"] for p in listed] == ["podcast", "music", "voice", "audiobook"]
    assert all(p["builtin"] and p["description"] for p in listed)
    assert listed[0]["fields"] == {"format": "mp3", "bitrate": "64k", "channels": "1", "normalize": "true"}
    made = _presets(user, "/my-talks", "PUT", json={"format": "opus", "bitrate": 48, "channels": 1, "normalize": True})
    assert made.status_code == 201, made.text
    assert made.json() == {"name": "my-talks", "builtin": False, "description": None,
                           "fields": {"format": "opus", "bitrate": "48k", "channels": "1", "normalize": "true"}}
    assert _presets(user).json()["presets"][-1] == made.json()
    assert _presets(user, "/my-talks").json() == made.json()
    assert _presets(user, "/podcast").json()["builtin"] is True
    replaced = _presets(user, "/my-talks", "PUT", json={"format": "flac"})
    assert replaced.status_code == 200 and replaced.json()["fields"] == {"format": "flac"}
    assert _presets(user, "/my-talks", "DELETE").status_code == 204
    assert _presets(user, "/my-talks").status_code == 404
    assert _presets(user, "/my-talks", "DELETE").status_code == 404
    assert [p["name"] for p in _presets(user).json()["presets"]] == ["podcast", "music", "voice", "audiobook"]


def test_bad_names_bad_fields_and_builtin_names_are_refused(user):
    for name, body, status, code in (("Big", {"format": "mp3"}, 400, "invalid_preset_name"),
                                     ("x" * 41, {"format": "mp3"}, 400, "invalid_preset_name"),
                                     ("podcast", {"format": "mp3"}, 409, "builtin_preset"),
                                     ("mine", {"bitrate": "999k"}, 400, "invalid_option"),
                                     ("mine", {"preset": "music"}, 400, "invalid_option"),
                                     ("mine", {"colour": "red"}, 400, "invalid_option")):
        refused = _presets(user, f"/{name}", "PUT", json=body)
        assert (refused.status_code, refused.json()["code"]) == (status, code), (name, body, refused.text)
    not_json = _presets(user, "/mine", "PUT", data="format=mp3", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415
    assert _presets(user, "/podcast", "DELETE").json()["code"] == "builtin_preset"
    assert _presets(user, "/mine").status_code == 404


def test_another_users_preset_is_404_and_cannot_be_named(stack, user, stereo_clip):
    assert _presets(user, "/private-one", "PUT", json={"format": "wav"}).status_code == 201
    other = Client(stack["gateway"]).signed_up()
    assert _presets(other, "/private-one").status_code == 404
    assert _presets(other, "/private-one", "DELETE").status_code == 404
    assert "private-one" not in [p["name"] for p in _presets(other).json()["presets"]]
    refused = other.upload(stereo_clip, options={"preset": "private-one"})
    assert (refused.status_code, refused.json()["code"]) == (400, "unknown_preset"), refused.text
    assert "private-one" in refused.json()["detail"]
    assert _presets(user, "/private-one").status_code == 200  # still the owner's


def test_the_per_user_limit(stack):
    """PRESETS_MAX_PER_USER is 50 by default: the 51st new preset is refused, replacing one is not."""
    user = Client(stack["gateway"]).signed_up()
    for n in range(50):
        assert _presets(user, f"/p{n}", "PUT", json={"bitrate": "128k"}).status_code == 201
    refused = _presets(user, "/p50", "PUT", json={"bitrate": "128k"})
    assert (refused.status_code, refused.json()["code"]) == (409, "too_many_presets"), refused.text
    assert _presets(user, "/p7", "PUT", json={"bitrate": "160k"}).status_code == 200
    assert _presets(user, "/p7", "DELETE").status_code == 204
    assert _presets(user, "/p50", "PUT", json={"bitrate": "128k"}).status_code == 201


def test_a_read_api_key_lists_presets_but_cannot_change_them(stack, user):
    made = requests.post(f"{user.base}/me/api-keys", headers=user.auth, json={"name": "reader", "scope": "read"},
                         timeout=10)
    read = {"Authorization": f"Bearer {made.json()['key']}"}
    assert requests.get(f"{user.base}/me/presets", headers=read, timeout=10).status_code == 200
    for method in ("PUT", "DELETE"):
        refused = requests.request(method, f"{user.base}/me/presets/by-key", headers=read, json={"format": "mp3"},
                                   timeout=10)
        assert (refused.status_code, refused.json()["code"]) == (403, "read_only_key"), refused.text


def test_podcast_preset_makes_a_mono_64k_normalised_mp3(stack, user, stereo_clip, tmp_path):
    counted = metric_value(stack["metrics"]["gateway"], "gateway_upload_presets_total", preset="podcast") or 0
    response = user.upload(_fresh(stereo_clip, tmp_path, "Talk.mp4"), options={"preset": "podcast"})
    assert response.status_code == 202, response.text
    job = user.wait_job(response.json()["job_id"])
    assert job["status"] == "done", job
    assert job["preset"] == "podcast"
    assert job["options"] == {"format": "mp3", "bitrate": "64k", "channels": 1, "normalize": True}
    audio = _audio_of(user.download(job["mp3_id"]).content, tmp_path, "mp3")
    assert (audio["codec_name"], audio["channels"], audio["bit_rate"]) == ("mp3", 1, "64000")
    after = metric_value(stack["metrics"]["gateway"], "gateway_upload_presets_total", preset="podcast")
    assert after == counted + 1


def test_explicit_fields_override_the_preset_wherever_they_come(user, stereo_clip, tmp_path):
    """bitrate=96k beats podcast's 64k; the preset field may follow the file (the fields are read whole)."""
    path = _fresh(stereo_clip, tmp_path, "Late.mp4")
    with open(path, "rb") as f:
        body = MultipartEncoder([("bitrate", "96k"), ("file", ("Late.mp4", f, "video/mp4")), ("preset", "podcast")])
        response = requests.post(f"{user.base}/upload", data=body, timeout=30,
                                 headers={**user.auth, "Content-Type": body.content_type})
    assert response.status_code == 202, response.text
    job = user.wait_job(response.json()["job_id"])
    assert job["status"] == "done" and job["preset"] == "podcast", job
    assert job["options"] == {"format": "mp3", "bitrate": "96k", "channels": 1, "normalize": True}
    audio = _audio_of(user.download(job["mp3_id"]).content, tmp_path, "mp3")
    assert (audio["channels"], audio["bit_rate"]) == (1, "96000")


def test_a_users_own_preset_on_a_tus_upload(user, stereo_clip, tmp_path):
    assert _presets(user, "/tiny-opus", "PUT", json={"format": "opus", "bitrate": "24k"}).status_code == 201
    data = unique_mp4(stereo_clip.read_bytes())

    def metadata(**pairs: str) -> str:
        return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())

    unknown = requests.post(f"{user.base}/uploads/", timeout=10, headers={
        **user.auth, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata(preset="nope")})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "unknown_preset"), unknown.text
    created = requests.post(f"{user.base}/uploads/", timeout=10, headers={
        **user.auth, **TUS, "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(filename="Memo.mp4", preset="tiny-opus", channels="1")})
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    patched = requests.patch(location if location.startswith("http") else user.base + location, data=data,
                             timeout=30, headers={**user.auth, **TUS, "Upload-Offset": "0",
                                                  "Content-Type": "application/offset+octet-stream"})
    assert patched.status_code == 204, patched.text
    job = user.wait_job(patched.headers["Job-Id"])
    assert job["status"] == "done" and job["preset"] == "tiny-opus", job
    assert job["options"] == {"format": "opus", "bitrate": "24k", "channels": 1}
    audio = _audio_of(user.download(job["mp3_id"]).content, tmp_path, "opus")
    assert (audio["codec_name"], audio["channels"]) == ("opus", 1)


def test_an_upload_without_a_preset_shows_none(user, stereo_clip, tmp_path):
    job = user.wait_job(user.upload(_fresh(stereo_clip, tmp_path, "Plain.mp4")).json()["job_id"])
    assert job["preset"] is None and job["options"] == {"format": "mp3"}
