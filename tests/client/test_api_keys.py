"""The CLI and the SDK with real personal API keys made by POST /me/api-keys: `vid2mp3 login --api-key`,
VID2MP3_API_KEY, `Client(url, api_key=...)`; a read key reads but changes nothing; a revoked key stops."""
from __future__ import annotations

import json

import pytest
import requests
from vid2mp3 import ApiError, Client
from vid2mp3.config import UrlStore

from devkit.media import codec_of

from .conftest import Cli

TUS = {"Tus-Resumable": "1.0.0"}


def _key(gateway: str, user, scope: str = "full") -> str:
    made = requests.post(f"{gateway}/me/api-keys", headers=user.auth, json={"name": f"client {scope}", "scope": scope},
                         timeout=10)
    assert made.status_code == 201, made.text
    return made.json()["key"]


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_cli_logs_in_with_an_api_key_converts_and_stops_when_it_is_revoked(stack, user, videos, tmp_path):
    gateway, key = stack["gateway"], _key(stack["gateway"], user)
    cli = Cli(tmp_path / "home", gateway, token=None)
    assert cli.json("login", "--api-key", key)["email"] == user.email
    stored = json.loads((cli.home / "config" / "vid2mp3" / "credentials.json").read_text())["servers"][gateway]
    assert stored == {"api_key": key, "email": user.email}
    result = cli.json("convert", videos[0], "--out", tmp_path / "out")[0]
    assert result["status"] == "done" and codec_of(tmp_path / "out" / f"{videos[0].stem}.mp3") == "mp3"
    assert [job["job_id"] for job in cli.json("jobs")] == [result["job_id"]]

    key_id = key.split("_")[1]
    assert requests.delete(f"{gateway}/me/api-keys/{key_id}", headers=user.auth, timeout=10).status_code == 204
    assert cli.json("jobs", expect=3)["error"]["code"] == "invalid_api_key"  # at once, from the stored key
    forged = "v2m_" + "0" * 16 + "_" + "a" * 43
    assert cli.json("login", "--api-key", forged, expect=3)["error"]["code"] == "invalid_api_key"


def test_cli_with_a_read_key_reads_and_is_refused_every_change(stack, user, videos, tmp_path):
    key = _key(stack["gateway"], user, "read")
    job_id = user.upload(videos[1]).json()["job_id"]
    cli = Cli(tmp_path / "home", stack["gateway"], token=None)
    cli.env["VID2MP3_API_KEY"] = key
    assert cli.json("show", job_id)["job_id"] == job_id
    assert cli.json("convert", videos[0], expect=3)[0]["error"]["code"] == "read_only_key"
    assert cli.json("cancel", job_id, expect=3)["error"]["code"] == "read_only_key"
    assert cli.json("delete", job_id, expect=3)["error"]["code"] == "read_only_key"
    assert user.job(job_id).status_code == 200


def test_sdk_with_a_real_api_key(stack, user, videos, tmp_path):
    gateway = stack["gateway"]
    full = Client(gateway, api_key=_key(gateway, user), url_store=UrlStore(tmp_path / "uploads.json"))
    assert full.me().email == user.email
    saved = full.convert(videos[2], out=tmp_path)
    assert codec_of(saved) == "mp3"
    read = Client(gateway, api_key=_key(gateway, user, "read"), url_store=UrlStore(tmp_path / "read.json"))
    assert [job.filename for job in read.jobs()] == [videos[2].name]
    with pytest.raises(ApiError) as refused:
        read.upload(videos[0])
    assert (refused.value.status, refused.value.code, refused.value.exit_code) == (403, "read_only_key", 3)


def test_key_requests_get_ratelimit_fields_and_a_read_key_cannot_touch_a_tus_upload(stack, user):
    """A full key's upload creation reports the quotas (RateLimit-Policy, RateLimit) as a token's does; a read
    key may HEAD the upload but not PATCH or DELETE it."""
    gateway = stack["gateway"]
    full, read = _bearer(_key(gateway, user)), _bearer(_key(gateway, user, "read"))
    created = requests.post(f"{gateway}/uploads/", headers={**full, **TUS, "Upload-Length": "10",
                                                            "Upload-Metadata": "filename Y2xpcC5tcDQ="}, timeout=10)
    assert created.status_code == 201, created.text
    assert "RateLimit-Policy" in created.headers and "RateLimit" in created.headers
    upload = created.headers["Location"]
    upload = upload if upload.startswith("http") else gateway + upload
    assert requests.head(upload, headers={**read, **TUS}, timeout=10).headers["Upload-Offset"] == "0"
    patched = requests.patch(upload, data=b"0123456789", timeout=10, headers={
        **read, **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    deleted = requests.delete(upload, headers={**read, **TUS}, timeout=10)
    for refused in (patched, deleted):
        assert refused.status_code == 403 and refused.json()["code"] == "read_only_key", refused.text
    assert requests.head(upload, headers={**full, **TUS}, timeout=10).headers["Upload-Offset"] == "0"
    assert requests.delete(upload, headers={**full, **TUS}, timeout=10).status_code == 204

