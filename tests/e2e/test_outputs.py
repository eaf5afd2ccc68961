"""Several outputs from one upload (issue 23), on the real stack: `outputs` asked for by multipart and tus,
every result and waveform of a done job shown, downloaded (token and signed link), shared per output
(dedup), counted in the quota, and removed by DELETE and by retention.

The converter fills `results`; most tests here put a done job's results in place themselves (real
GridFS files), so they test the gateway's side alone. `test_a_real_upload_makes_three_outputs` needs
the converter that makes several outputs.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import time

import pytest
import requests

from services import janitor
from services.common.jobs import Job, Status
from services.common.storage import files, job_records
from services.common.storage.connection import new_id
from devkit.client import Client
from devkit.media import codec_of, make_media, unique_mp4
from tests.helpers import store_file

WEEK = 8 * 86400
THREE = [{"format": "mp3", "bitrate": "192k"}, {"format": "opus", "bitrate": "64k"}, {"format": "flac"}]
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def alice(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def bob(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A clip no other module uploads (dedup would otherwise find others' jobs of the same bytes)."""
    path = make_media(tmp_path_factory.mktemp("outputs") / "talk.mp4", seconds=1, audio="sine=frequency=660")
    path.write_bytes(unique_mp4(path.read_bytes()))
    return path


def _stored(data: bytes, filename: str) -> tuple[str, int]:
    file_id = new_id()
    return file_id, store_file(files.results(), file_id, filename, io.BytesIO(data), {})


def _result(output: int, options: dict, name: str, media_type: str, data: bytes, waveform: bool = True) -> dict:
    mp3_id, size = _stored(data, name)
    waveform_id = _stored(json.dumps({"version": 2, "data": [0, 1]}).encode(), name + ".json")[0] if waveform else None
    return {"mp3_id": mp3_id, "output": output, "name": name, "media_type": media_type, "size": size,
            "options": options, "audio_seconds": 1.0, "waveform_id": waveform_id,
            "loudness": {"integrated_lufs": -16.1, "range_lu": 2.0, "true_peak_dbtp": -1.6}}


def done_job(user: Client, results: list[dict], sha256: str | None = None, filename: str = "talk.mp4") -> Job:
    """A done job of `user`'s holding `results` (as the converter leaves one)."""
    job = Job(new_id(), owner=owner_of(user), video_id=new_id(), filename=filename, size=10, sha256=sha256,
              options=results[0]["options"], outputs=[r["options"] for r in results if "chapter" not in r],
              results=results, mp3_id=results[0]["mp3_id"], audio_seconds=1.0, video_removed=True, published=True)
    return job_records.create_job(job, Status.DONE)


def owner_of(user: Client) -> str:
    """The user id the gateway stores as `owner` (the token's subject)."""
    payload = user.token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


def two_results() -> list[dict]:
    return [_result(0, {"format": "mp3", "bitrate": "192k"}, "talk.mp3", "audio/mpeg", b"ID3" + b"m" * 3000),
            _result(1, {"format": "opus", "bitrate": "64k"}, "talk.opus", "audio/ogg", b"OggS" + b"o" * 2000)]


def _post(user: Client, path, **fields) -> requests.Response:
    with open(path, "rb") as f:
        return requests.post(f"{user.base}/upload", headers=user.auth, files={"file": (path.name, f)},
                             data=fields, timeout=60)


def _exists(file_id: str) -> bool:
    return files.file_info(files.results(), file_id) is not None


# ---------------------------------------------------------------- asking for outputs


def test_bad_outputs_are_refused_naming_the_field(alice, clip):
    bad = json.dumps([{"format": "mp3"}, {"format": "opus", "bitrate": "999k"}])
    answer = _post(alice, clip, outputs=bad)
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_option"
    assert "outputs[1].bitrate" in answer.json()["detail"]
    too_many = _post(alice, clip, outputs=json.dumps([{"format": "mp3"}] * 6))
    assert too_many.status_code == 400 and "outputs" in too_many.json()["detail"]
    metadata = "filename " + base64.b64encode(b"v.mp4").decode() + ",outputs " + base64.b64encode(bad.encode()).decode()
    tus = requests.post(f"{alice.base}/uploads/", headers={**TUS, **alice.auth, "Upload-Length": "100",
                                                           "Upload-Metadata": metadata}, timeout=10)
    assert tus.status_code == 400 and "outputs[1].bitrate" in tus.json()["detail"]


def test_an_upload_stores_its_outputs_and_the_first_as_options(alice, clip):
    answer = _post(alice, clip, normalize="true", outputs=json.dumps(THREE))
    assert answer.status_code == 202, answer.text
    job = job_records.get_job(answer.json()["job_id"])
    assert job.outputs == [dict(each, normalize=True) for each in THREE]
    assert job.options == job.outputs[0]
    assert alice.job(job.id).json()["options"] == {"format": "mp3", "bitrate": "192k", "normalize": True}


def test_a_tus_upload_carries_its_outputs_to_the_job(alice, clip):
    data = clip.read_bytes()
    wanted = json.dumps(THREE[1:])
    metadata = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                        for key, value in (("filename", "talk.mp4"), ("outputs", wanted)))
    created = requests.post(f"{alice.base}/uploads/", headers={**TUS, **alice.auth, "Upload-Length": str(len(data)),
                                                               "Upload-Metadata": metadata}, timeout=10)
    assert created.status_code == 201, created.text
    sent = requests.patch(alice.base + created.headers["Location"], data=data, timeout=30,
                          headers={**TUS, **alice.auth, "Content-Type": "application/offset+octet-stream",
                                   "Upload-Offset": "0"})
    assert sent.status_code == 204, sent.text
    job = job_records.get_job(sent.headers["Job-Id"])
    assert job.outputs == THREE[1:] and job.options == THREE[1]


# ---------------------------------------------------------------- a done job's results


def test_every_result_and_waveform_is_shown_and_downloaded(alice, bob):
    results = two_results()
    job = done_job(alice, results)
    shown = alice.job(job.id).json()
    assert shown["mp3_id"] == results[0]["mp3_id"] and [o["mp3_id"] for o in shown["outputs"]] == \
        [r["mp3_id"] for r in results]
    assert [o["format"] for o in shown["outputs"]] == ["mp3", "opus"]
    assert [o["size"] for o in shown["outputs"]] == [3003, 2004]
    assert shown["loudness"]["output"]["integrated_lufs"] == -16.1

    opus = shown["outputs"][1]
    got = requests.get(alice.base + opus["download_url"], headers=alice.auth, timeout=10)
    assert got.status_code == 200 and got.content == b"OggS" + b"o" * 2000
    assert got.headers["Content-Type"] == "audio/ogg" and 'filename="talk.opus"' in got.headers["Content-Disposition"]
    part = alice.download(opus["mp3_id"], Range="bytes=0-3")
    assert part.status_code == 206 and part.content == b"OggS"
    assert alice.download(opus["mp3_id"], **{"If-None-Match": got.headers["ETag"]}).status_code == 304

    waveform = requests.get(alice.base + opus["waveform_url"], headers=alice.auth, timeout=10)
    assert waveform.status_code == 200 and waveform.headers["Content-Type"] == "application/json"
    assert waveform.json()["version"] == 2

    for url in (opus["link"], opus["waveform_link"], shown["outputs"][0]["link"]):
        assert requests.get(url, timeout=10).status_code == 200  # no token
    assert requests.get(opus["link"], timeout=10).content == got.content
    assert bob.download(opus["mp3_id"]).status_code == 404  # another user's
    assert bob.download(results[0]["waveform_id"]).status_code == 404


def test_an_old_job_shows_one_output_from_its_mp3_id(alice):
    mp3_id, _size = _stored(b"ID3" + b"x" * 100, "old.mp3")
    old = Job(new_id(), owner=owner_of(alice), video_id=new_id(), filename="old.mp4", mp3_id=mp3_id,
              options={"format": "mp3"}, published=True)
    job = job_records.create_job(old, Status.DONE)
    (only,) = alice.job(job.id).json()["outputs"]
    assert only["mp3_id"] == mp3_id and only["filename"] == "old.mp3" and only["waveform_url"] is None
    assert alice.download(mp3_id).status_code == 200


def test_the_quota_counts_every_result(stack):
    # A user of its own: alice's real uploads above are still converting and would add to her usage.
    alice = Client(stack["gateway"]).signed_up()
    before = requests.get(f"{alice.base}/me", headers=alice.auth, timeout=10).json()["usage"]["stored_bytes"]
    results = two_results()
    done_job(alice, results)
    after = requests.get(f"{alice.base}/me", headers=alice.auth, timeout=10).json()["usage"]["stored_bytes"]
    waveforms = sum(files.file_info(files.results(), r["waveform_id"])["length"] for r in results)
    assert after - before == 3003 + 2004 + waveforms


def test_delete_removes_every_result_and_waveform(alice):
    results = two_results()
    job = done_job(alice, results)
    held = [r[key] for r in results for key in ("mp3_id", "waveform_id")]
    link = alice.job(job.id).json()["outputs"][1]["link"]
    assert all(_exists(file_id) for file_id in held)
    assert requests.delete(f"{alice.base}/jobs/{job.id}", headers=alice.auth, timeout=10).status_code == 204
    assert not any(_exists(file_id) for file_id in held)
    assert requests.get(link, timeout=10).status_code == 410


def test_retention_removes_every_result_and_waveform(alice):
    results = two_results()
    job = done_job(alice, results)
    job_records.collection().update_one({"_id": job.id}, {"$set": {"ended_at": time.time() - WEEK}})
    janitor.remove_old_results(time.time(), janitor.Round())
    assert alice.job(job.id).json()["status"] == "expired"
    assert not any(_exists(r[key]) for r in results for key in ("mp3_id", "waveform_id"))
    assert alice.download(results[1]["mp3_id"]).status_code == 410


def test_crash_cleanup_removes_every_file_a_dead_converter_wrote(alice):
    """A job that ended while its converter was writing several outputs (pending_mp3_id still set): every
    file written for it goes, but none of a done job's results."""
    job_id, attempt = new_id(), new_id()
    written = [files.attempt_file_id(attempt, kind, n) for n in range(3) for kind in ("result", "waveform")]
    for file_id in written:
        store_file(files.results(), file_id, "half.mp3", io.BytesIO(b"partial"), {"job_id": job_id})
    dead = Job(job_id, owner=owner_of(alice), video_id=new_id(), filename="talk.mp4", pending_mp3_id=attempt,
               published=True)
    job_records.create_job(dead, Status.FAILED)
    results = two_results()
    kept = done_job(alice, results)
    files.results().files.update_many({"_id": {"$in": [r["mp3_id"] for r in results]}},
                                      {"$set": {"metadata": {"job_id": kept.id}}})
    job_records.collection().update_one({"_id": kept.id}, {"$set": {"pending_mp3_id": new_id()}})  # a dead attempt's
    janitor.remove_abandoned_results(janitor.Round())
    assert not any(_exists(file_id) for file_id in written)
    assert all(_exists(r["mp3_id"]) for r in results)
    assert job_records.get_job(job_id).pending_mp3_id is None


# ---------------------------------------------------------------- dedup per output


def test_outputs_made_before_are_shared_and_kept_while_used(alice, tmp_path):
    # bytes of its own: the module's other tests convert `clip` for real, and dedup would find those results
    clip = tmp_path / "talk.mp4"
    source = make_media(tmp_path / "source.mp4", seconds=1, audio="sine=frequency=660")
    clip.write_bytes(unique_mp4(source.read_bytes()))
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    results = two_results()
    earlier = done_job(alice, results, sha256=sha, filename="earlier.mp4")

    # every output made already (in another order): done at once, sharing the files
    wanted = json.dumps([{"format": "opus", "bitrate": "64k"}, {"format": "mp3", "bitrate": "192k"}])
    shared = alice.job(_post(alice, clip, outputs=wanted).json()["job_id"]).json()
    assert shared["status"] == "done" and shared["reused"] is True
    assert [(o["mp3_id"], o["output"]) for o in shared["outputs"]] == [(results[1]["mp3_id"], 0),
                                                                         (results[0]["mp3_id"], 1)]
    assert [o["filename"] for o in shared["outputs"]] == ["talk.opus", "talk.mp3"]  # named after this upload
    assert shared["mp3_id"] == results[1]["mp3_id"]
    # a single output without `outputs` shares too, as before
    single = alice.job(_post(alice, clip, format="opus", bitrate="64k").json()["job_id"]).json()
    assert single["reused"] is True and single["mp3_id"] == results[1]["mp3_id"]

    # some made, some not: converted whole
    partial = json.dumps([{"format": "mp3", "bitrate": "192k"}, {"format": "flac"}])
    converting = alice.job(_post(alice, clip, outputs=partial).json()["job_id"]).json()
    assert converting["reused"] is False and converting["status"] in ("queued", "converting", "done")

    # the earlier job goes: its files stay for the jobs sharing them
    assert requests.delete(f"{alice.base}/jobs/{earlier.id}", headers=alice.auth, timeout=10).status_code == 204
    assert all(_exists(r["mp3_id"]) for r in results)
    assert alice.download(results[0]["mp3_id"]).status_code == 200
    for job_id in (shared["job_id"], single["job_id"]):
        assert requests.delete(f"{alice.base}/jobs/{job_id}", headers=alice.auth, timeout=10).status_code == 204
    assert not any(_exists(r[key]) for r in results for key in ("mp3_id", "waveform_id"))


# ---------------------------------------------------------------- with the converter (issue 23)


def test_a_real_upload_makes_three_outputs(alice, tmp_path):
    """Needs the converter of issue 23 (several outputs in one run): mp3 192k, opus 64k and flac."""
    video = make_media(tmp_path / "concert.mp4", seconds=2, audio="sine=frequency=523")
    video.write_bytes(unique_mp4(video.read_bytes()))
    answer = _post(alice, video, outputs=json.dumps(THREE))
    assert answer.status_code == 202, answer.text
    job = alice.wait_job(answer.json()["job_id"], timeout=120)
    assert job["status"] == "done", job
    assert [(o["output"], o["format"]) for o in job["outputs"]] == [(0, "mp3"), (1, "opus"), (2, "flac")]
    assert job["mp3_id"] == job["outputs"][0]["mp3_id"]
    for output, codec in zip(job["outputs"], ("mp3", "opus", "flac"), strict=True):
        got = requests.get(alice.base + output["download_url"], headers=alice.auth, timeout=30)
        assert got.status_code == 200 and len(got.content) == output["size"]
        saved = tmp_path / output["filename"]
        saved.write_bytes(got.content)
        assert codec_of(saved) == codec
        assert requests.get(output["link"], timeout=30).content == got.content
    assert job["outputs"][0]["options"] == THREE[0] and job["outputs"][1]["options"] == THREE[1]
