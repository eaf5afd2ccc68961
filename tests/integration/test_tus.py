"""tus 1.0.0 resumable uploads against the running stack, with the real `tuspy` client and by hand."""
from __future__ import annotations

import base64
import io
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client

from services.common.storage import files
from services.common.storage import uploads as upload_records
from services.common.storage.connection import new_id
from services.janitor import Round, remove_expired_tus_uploads
from tests.helpers import find_jobs
from devkit.client import Client
from devkit.media import make_media
from devkit.metrics import metric_samples

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> bytes:
    # Over two GridFS chunks (255 KiB), so PATCHes end inside chunks and across them (lossless: big).
    data = make_media(tmp_path_factory.mktemp("tus") / "clip.mp4", seconds=3,
                      video="testsrc2=size=320x240:rate=25", extra=["-qp", "0"]).read_bytes()
    assert len(data) > 2 * files.CHUNK_SIZE
    return data


@pytest.fixture
def user(stack) -> Client:
    # One user per test: the same bytes uploaded again by one user would be reused (dedup) and
    # their video removed, while these tests look at the stored bytes.
    return Client(stack["gateway"]).signed_up()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create(user: Client, length: int, **headers) -> requests.Response:
    headers = {**TUS, **user.auth, "Upload-Length": str(length), "Upload-Metadata": f"filename {b64('clip.mp4')}",
               **headers}
    return requests.post(f"{user.base}/uploads/", headers={k: v for k, v in headers.items() if v is not None},
                         timeout=10)


def upload_url(user: Client, length: int) -> str:
    response = create(user, length)
    assert response.status_code == 201, response.text
    return user.base + response.headers["Location"]


def patch(user: Client, url: str, offset: int, data: bytes, **headers) -> requests.Response:
    return requests.patch(url, data=data, timeout=30,
                          headers={**TUS, **user.auth, **OCTET, "Upload-Offset": str(offset), **headers})


def head(user: Client, url: str) -> requests.Response:
    return requests.head(url, headers={**TUS, **user.auth}, timeout=10)


def stored_bytes(upload_id: str) -> bytes:
    return b"".join(files.read_file(files.videos(), upload_id))


def tuspy(user: Client, data: bytes, url: str | None = None, chunk_size: int = 100_000):
    tus = tus_client.TusClient(f"{user.base}/uploads/", headers=user.auth)
    return tus.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size, url=url,
                        metadata={"filename": "clip.mp4"})


def test_options_advertise_the_protocol(stack):
    response = requests.options(f"{stack['gateway']}/uploads/", timeout=10)
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {"creation", "termination", "expiration"}
    assert int(response.headers["Tus-Max-Size"]) > 0


def test_tuspy_upload_becomes_a_done_job_with_the_exact_bytes(user, video):
    uploader = tuspy(user, video)
    uploader.upload()  # 100 kB PATCHes: most end inside a GridFS chunk, the next one completes it
    state = head(user, uploader.url)
    assert state.status_code == 200 and state.headers["Cache-Control"] == "no-store"
    assert state.headers["Upload-Offset"] == state.headers["Upload-Length"] == str(len(video))
    stored = stored_bytes(uploader.url.rsplit("/", 1)[1])
    assert len(stored) == len(video) and stored == video
    job = user.wait_job(state.headers["Job-Id"])
    assert job["status"] == "done", job
    assert job["filename"] == "clip.mp4" and job["size"] == len(video)


def test_final_patch_carries_job_id_and_a_repeat_is_refused(user, video):
    url = upload_url(user, len(video))
    first = patch(user, url, 0, video[:300_000])
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "300000"
    assert "Upload-Expires" in first.headers and "Job-Id" not in first.headers
    last = patch(user, url, 300_000, video[300_000:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(video))
    assert last.headers["Tus-Resumable"] == "1.0.0" and last.headers["Job-Id"]
    assert head(user, url).headers["Job-Id"] == last.headers["Job-Id"]
    assert patch(user, url, len(video), b"x").status_code in (409, 413)
    assert find_jobs({"video_id": url.rsplit("/", 1)[1]})[0].id == last.headers["Job-Id"]  # one job


class HalfPatch:
    """A PATCH sent by hand over a socket: the test decides how much of the body goes, and when it drops."""

    def __init__(self, user: Client, url: str, offset: int, declared: int):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.sendall((f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
                           f"Authorization: Bearer {user.token}\r\nContent-Type: application/offset+octet-stream\r\n"
                           f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n").encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def drop(self) -> None:
        self.sock.close()


def wait_offset(user: Client, url: str, expected: int) -> None:
    deadline = time.monotonic() + 30
    while (offset := head(user, url).headers.get("Upload-Offset")) != str(expected):
        assert time.monotonic() < deadline, f"offset stays {offset}, expected {expected}"
        time.sleep(0.2)


def tus_events(stack) -> dict[str, float]:
    samples = metric_samples(stack["metrics"]["gateway"])
    return {dict(labels)["event"]: v for (name, labels), v in samples.items() if name == "gateway_tus_uploads_total"}


def test_connection_cut_midway_keeps_the_bytes_and_tuspy_resumes_at_the_server_offset(stack, user, video):
    before = tus_events(stack)
    url = upload_url(user, len(video))
    cut = HalfPatch(user, url, 0, len(video))
    cut.send(video[:400_000])  # past one chunk, ending inside the second
    time.sleep(0.5)
    cut.drop()
    wait_offset(user, url, 400_000)
    uploader = tuspy(user, video, url=url)
    assert uploader.offset == 400_000  # tuspy asked the server (HEAD) where to go on
    uploader.upload()
    job_id = head(user, url).headers["Job-Id"]
    assert user.wait_job(job_id)["status"] == "done"
    assert stored_bytes(url.rsplit("/", 1)[1]) == video
    after = tus_events(stack)
    assert {event: after[event] - before[event] for event in ("created", "resumed", "completed")} == \
        {"created": 1, "resumed": 1, "completed": 1}


def test_a_second_patch_while_one_is_writing_is_refused(user, video):
    url = upload_url(user, len(video))
    upload_id = url.rsplit("/", 1)[1]
    slow = HalfPatch(user, url, 0, len(video))
    slow.send(video[:1000])
    deadline = time.monotonic() + 10
    while (upload_records.collection().find_one({"_id": upload_id}) or {}).get("lock_until", 0) < time.time():
        assert time.monotonic() < deadline, "the first PATCH never took the upload"
        time.sleep(0.1)
    assert patch(user, url, 0, b"y" * 10).status_code == 423  # same offset: it is busy
    assert requests.delete(url, headers={**TUS, **user.auth}, timeout=10).status_code == 423
    slow.drop()
    wait_offset(user, url, 1000)
    assert patch(user, url, 0, b"y" * 10).status_code == 409  # now it is a stale offset


def test_hostile_requests_are_refused(stack, user, video):
    url = upload_url(user, 1000)
    assert patch(user, url, 5, b"x").status_code == 409
    assert patch(user, url, 0, b"x" * 1001).status_code == 413
    assert patch(user, url, 0, b"x", **{"Content-Type": "application/octet-stream"}).status_code == 415
    assert patch(user, url, 0, b"x", **{"Upload-Offset": "-1"}).status_code == 400
    missing = requests.patch(url, data=b"x", headers={**user.auth, **OCTET, "Upload-Offset": "0"}, timeout=10)
    assert missing.status_code == 412 and missing.headers["Tus-Version"] == "1.0.0"
    assert create(user, 10, **{"Tus-Resumable": "0.2.2"}).status_code == 412
    other = Client(stack["gateway"]).signed_up()
    assert head(other, url).status_code == 404
    assert patch(other, url, 0, b"x").status_code == 404
    assert requests.delete(url, headers={**TUS, **other.auth}, timeout=10).status_code == 404
    assert head(user, url.rsplit("/", 1)[0] + "/" + new_id()).status_code == 404
    assert head(Client(stack["gateway"]), url).status_code == 401  # no token
    assert requests.head(url, headers={**TUS, "Authorization": "Bearer forged.token.x"}, timeout=10).status_code == 401
    assert create(user, 2**31 + 1).status_code == 413  # over MAX_UPLOAD_BYTES
    assert create(user, 0).status_code == 400
    for length in ("-5", "ten", "1e3", "9" * 40):
        assert create(user, 1, **{"Upload-Length": length}).status_code == 400
    for metadata in ("filename not-base64!", "filename " + b64("a") + ",filename " + b64("b"), "a b c",
                     "filename " + base64.b64encode(b"\xff\xfe").decode(), ","):
        assert create(user, 10, **{"Upload-Metadata": metadata}).status_code == 400, metadata
    hostile_metadata = f"filename {b64('../../etc/pass' + chr(0) + 'wd')},colour {b64('red')}"
    hostile = create(user, 10, **{"Upload-Metadata": hostile_metadata})
    assert hostile.status_code == 201
    hostile_id = hostile.headers["Location"].rsplit("/", 1)[1]
    assert upload_records.collection().find_one({"_id": hostile_id})["filename"] == "passwd"
    assert head(user, url).headers["Upload-Offset"] == "0"  # nothing above changed the upload


def test_termination_removes_the_bytes(user, video):
    url = upload_url(user, len(video))
    assert patch(user, url, 0, video[:300_000]).status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    assert requests.delete(url, headers={**TUS, **user.auth}, timeout=10).status_code == 204
    assert head(user, url).status_code == 404
    assert list(files.videos().chunks.find({"files_id": upload_id})) == []


def test_an_expired_upload_answers_410_and_the_janitor_removes_it(user, video):
    url = upload_url(user, len(video))
    created = create(user, 10)
    assert "Upload-Expires" in created.headers and created.headers["Upload-Expires"].endswith("GMT")
    assert patch(user, url, 0, video[:300_000]).status_code == 204
    upload_id = url.rsplit("/", 1)[1]
    upload_records.collection().update_one({"_id": upload_id}, {"$set": {"expires": time.time() - 1}})
    assert head(user, url).status_code == 410
    assert patch(user, url, 300_000, video[300_000:]).status_code == 410
    tally = Round()
    remove_expired_tus_uploads(time.time(), tally)
    assert tally.removed["tus_expired"] >= 1
    assert head(user, url).status_code == 404
    assert list(files.videos().chunks.find({"files_id": upload_id})) == []


def test_chunks_a_killed_patch_stored_past_the_offset_are_adopted(user, video):
    url = upload_url(user, len(video))
    assert patch(user, url, 0, video[:300_000]).status_code == 204  # one full chunk, the rest in the tail
    upload_id = url.rsplit("/", 1)[1]
    # What a gateway killed between storing a chunk and committing its offset leaves behind.
    size = files.CHUNK_SIZE
    files.videos().chunks.insert_one({"files_id": upload_id, "n": 1, "data": video[size:2 * size]})
    assert patch(user, url, 300_000, video[300_000:]).status_code == 409
    uploader = tuspy(user, video, url=url)
    assert uploader.offset == 2 * size
    uploader.upload()
    assert user.wait_job(head(user, url).headers["Job-Id"])["status"] == "done"
    assert stored_bytes(upload_id) == video


def test_creation_with_an_idempotency_key_answers_the_first_upload(stack, user, video):
    key = {"Idempotency-Key": f"tus-{time.time_ns()}"}
    first, again = create(user, len(video), **key), create(user, len(video), **key)
    assert first.status_code == again.status_code == 201
    assert again.headers["Location"] == first.headers["Location"] and again.headers["Idempotent-Replayed"] == "true"
    other = Client(stack["gateway"]).signed_up()
    theirs = create(other, len(video), **key)  # the same key from another user is unrelated
    assert theirs.status_code == 201 and theirs.headers["Location"] != first.headers["Location"]
    url = user.base + first.headers["Location"]
    job_id = patch(user, url, 0, video).headers["Job-Id"]
    after = create(user, len(video), **key)  # still the first upload, which now names its job
    assert after.headers["Location"] == first.headers["Location"]
    assert head(user, user.base + after.headers["Location"]).headers["Job-Id"] == job_id
    assert create(user, len(video), **{"Idempotency-Key": "no spaces allowed"}).status_code == 400


def test_metadata_carries_output_options_and_a_callback(user, video):
    metadata = ",".join(f"{k} {b64(v)}" for k, v in
                        {"filename": "talk.mp4", "format": "flac", "title": "A talk",
                         "callback_url": "https://example.com/h"}.items())
    url = user.base + create(user, len(video), **{"Upload-Metadata": metadata}).headers["Location"]
    job = user.job(patch(user, url, 0, video).headers["Job-Id"]).json()
    assert job["options"] == {"format": "flac", "title": "A talk"}
    assert job["callback_url"] == "https://example.com/h"
    bad_option = create(user, len(video), **{"Upload-Metadata": f"filename {b64('a.mp4')},bitrate {b64('999k')}"})
    assert bad_option.status_code == 400 and bad_option.json()["error"]["code"] == "invalid_option"
    private = create(user, len(video), **{"Upload-Metadata": f"callback_url {b64('http://10.0.0.1/')}"})
    assert private.status_code == 400 and private.json()["error"]["code"] == "invalid_callback_url"
