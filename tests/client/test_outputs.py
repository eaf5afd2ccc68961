"""Several outputs from the client (issue 23): `--output` (repeatable) and the SDK's `outputs` ask for them,
`download --all` and `Client.download_all` save every result. Done jobs' results are put in place here
(real GridFS files); `test_convert_makes_every_output_asked_for` needs the converter of issue 23."""
from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from vid2mp3 import Client
from vid2mp3.config import UrlStore

from services.common.jobs import Job, Status
from services.common.storage import files, job_records
from services.common.storage.connection import new_id
from devkit.media import codec_of
from tests.helpers import store_file


@pytest.fixture
def sdk(stack, user, tmp_path) -> Client:
    return Client(stack["gateway"], token=user.token, url_store=UrlStore(tmp_path / "uploads.json"))


def owner_of(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


def done_job(token: str, contents: dict[str, bytes]) -> Job:
    """A done job of the token's user whose results are `contents` (file name → bytes), as the converter
    of several outputs leaves one."""
    results = []
    for index, (name, data) in enumerate(contents.items()):
        file_id = new_id()
        size = store_file(files.results(), file_id, name, io.BytesIO(data), {})
        results.append({"mp3_id": file_id, "output": index, "name": name, "media_type": "audio/x", "size": size,
                        "options": {"format": name.rsplit(".", 1)[1]}, "audio_seconds": 1.0, "loudness": None,
                        "waveform_id": None})
    job = Job(new_id(), owner=owner_of(token), video_id=new_id(), filename="talk.mp4", options=results[0]["options"],
              outputs=[r["options"] for r in results], results=results, mp3_id=results[0]["mp3_id"], published=True)
    return job_records.create_job(job, Status.DONE)


def test_the_sdk_sends_outputs_over_tus(sdk, videos):
    upload = sdk.upload(videos[0], {"normalize": True, "outputs": [{"format": "opus", "bitrate": "64k"},
                                                                   {"format": "flac", "cover": False}]})
    job = job_records.get_job(upload.job_id)
    assert job.outputs == [{"format": "opus", "bitrate": "64k", "normalize": True},
                           {"format": "flac", "normalize": True}]
    assert sdk.job(upload.job_id).options == job.outputs[0]


def test_a_bad_output_is_refused(cli, videos):
    refused = cli.json("convert", videos[0], "--output", "format=opus,bitrate=999k", expect=2)
    assert refused[0]["error"]["code"] == "invalid_option" and "outputs[0].bitrate" in refused[0]["error"]["message"]
    assert cli.run("convert", videos[0], "--output", "opus").returncode == 2  # not name=value: usage


def test_download_all_saves_every_result(cli, sdk, user, tmp_path):
    contents = {"talk.mp3": b"ID3" + b"m" * 500, "talk.opus": b"OggS" + b"o" * 300, "talk.flac": b"fLaC" + b"f" * 700}
    job = done_job(user.token, contents)
    shown = cli.json("download", job.id, "--all", "--out", tmp_path / "all")
    assert [Path(p).name for p in shown["outputs"]] == list(contents)
    assert {Path(p).name: Path(p).read_bytes() for p in shown["outputs"]} == contents
    assert [o["filename"] for o in sdk.job(job.id).outputs] == list(contents)
    saved = sdk.download_all(job.id, tmp_path / "sdk")
    assert [p.read_bytes() for p in saved] == list(contents.values())
    single = cli.json("download", job.id, "--out", tmp_path)  # without --all: the first, as before
    assert Path(single["output"]).read_bytes() == contents["talk.mp3"]


def test_convert_makes_every_output_asked_for(cli, videos, tmp_path):
    """Needs the converter of issue 23 (several outputs per job)."""
    video = shutil.copy(videos[1], tmp_path / "concert.mp4")
    results = cli.json("convert", video, "--output", "format=mp3,bitrate=192k", "--output", "format=opus,bitrate=64k",
                       "--output", "format=flac")
    assert results[0]["status"] == "done", results
    saved = [Path(p) for p in results[0]["outputs"]]
    assert [p.suffix for p in saved] == [".mp3", ".opus", ".flac"]
    assert [codec_of(p) for p in saved] == ["mp3", "opus", "flac"]
