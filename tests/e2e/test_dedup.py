"""Idempotent uploads and no work done twice, on the real stack: an Idempotency-Key repeat answers
the first job and stores nothing; identical content with identical options reuses the MP3, which
stays while any job uses it (DELETE and the janitor's retention)."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

from services import janitor
from services.common import idempotency
from services.common.storage import files, idempotency_keys, job_records
from devkit.client import Client
from devkit.media import make_media, unique_mp4
from tests.helpers import wait_mail

WEEK = 8 * 86400


@pytest.fixture(scope="module")
def users(stack):
    return Client(stack["gateway"]).signed_up(), Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two clips no other test module uploads: identical media made elsewhere on the shared stack would
    be another done job with the same content key (DEDUP_ACROSS_USERS reuses any user's)."""
    folder = tmp_path_factory.mktemp("dedup")
    clips = (make_media(folder / "one.mp4", seconds=1),
             make_media(folder / "two.mp4", seconds=1, audio="sine=frequency=880"))
    for clip in clips:
        clip.write_bytes(unique_mp4(clip.read_bytes()))
    return clips


def _post(user, path, key=None, **extra):
    headers = dict(user.auth, **({"Idempotency-Key": key} if key is not None else {}))
    with open(path, "rb") as f:
        return requests.post(f"{user.base}/upload", headers=headers, files={"file": (path.name, f)}, timeout=60,
                             **extra)


def _job_id(response) -> str:
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _video_files() -> int:
    return len(list(files.videos().files.find({}, {"_id": 1})))


def _done_pair(user, path) -> tuple[dict, dict]:
    """A converted job, then the same upload again (reused at once)."""
    first = user.wait_job(_job_id(_post(user, path)))
    assert first["status"] == "done" and first["reused"] is False
    second = user.job(_job_id(_post(user, path))).json()
    return first, second


@pytest.fixture(scope="module")
def pair(users, clips):
    return _done_pair(users[0], clips[0])


def test_reused_job_is_done_at_once_with_the_same_mp3_and_one_email(stack, users, clips, pair):
    first, second = pair
    assert second["status"] == "done" and second["reused"] is True, second
    assert second["mp3_id"] == first["mp3_id"]
    alice = users[0]
    assert alice.download(second["mp3_id"]).content == alice.download(first["mp3_id"]).content
    stored = job_records.get_job(second["job_id"])
    assert stored.video_removed and files.file_info(files.videos(), stored.video_id) is None
    assert stored.attempts == 0 and stored.worker is None
    assert len(wait_mail(stack["mail"], second["job_id"])) == 1
    time.sleep(1)  # a second email or a converter message would come right after the first
    assert len(wait_mail(stack["mail"], second["job_id"])) == 1
    assert second["job_id"] not in (stack["logs"] / "converter.log").read_text()


def test_idempotency_key_repeat_answers_the_first_job_and_stores_nothing(users, clips, pair):
    alice, bob = users
    key = f"upload-{uuid.uuid4()}"
    first = _job_id(_post(alice, clips[1], key))
    files = _video_files()
    again = _post(alice, clips[1], key)
    assert _job_id(again) == first and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == f"/jobs/{first}"
    assert _video_files() == files
    assert _job_id(_post(bob, clips[1], key)) != first  # the same key from another user is unrelated
    assert alice.wait_job(first)["status"] == "done"


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "naïve", "a\tb", "semi;colon"])
def test_garbage_idempotency_keys_are_refused_before_anything_is_stored(users, clips, key):
    files = _video_files()
    response = _post(users[0], clips[0], key)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_idempotency_key"
    assert _video_files() == files


def test_concurrent_uploads_with_one_key_make_one_job(users, clips, pair):
    key, answers = f"race-{uuid.uuid4()}", []

    def send():
        answers.append(_post(users[0], clips[0], key))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.status_code for r in answers} <= {202, 409}, [r.text for r in answers]
    assert len({r.json()["job_id"] for r in answers if r.status_code == 202}) == 1
    owner = job_records.get_job(pair[0]["job_id"]).owner
    assert idempotency_keys.collection().find_one({"_id": f"{owner}:{key}"})["job_id"]


def test_a_repeat_while_the_first_still_uploads_gets_409_then_the_job(users, clips, pair):
    alice, key = users[0], f"slow-{uuid.uuid4()}"
    boundary, release = "b0undary", threading.Event()
    content = clips[0].read_bytes()

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp4\"\r\n"
               f"Content-Type: video/mp4\r\n\r\n").encode() + content[:1000]
        release.wait(30)
        yield content[1000:] + f"\r\n--{boundary}--\r\n".encode()

    answers = []
    slow = threading.Thread(target=lambda: answers.append(requests.post(
        f"{alice.base}/upload", data=body(), timeout=60,
        headers={**alice.auth, "Idempotency-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"})))
    slow.start()
    owner = job_records.get_job(pair[0]["job_id"]).owner
    deadline = time.monotonic() + 20
    while idempotency_keys.collection().find_one({"_id": f"{owner}:{key}"}) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    conflict = _post(alice, clips[0], key)
    release.set()
    slow.join()
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"
    assert conflict.headers["Retry-After"]
    assert _job_id(_post(alice, clips[0], key)) == _job_id(answers[0])


def test_failed_upload_gives_its_key_back_and_expired_keys_are_forgotten(users, clips):
    alice, key = users[0], f"retry-{uuid.uuid4()}"
    broken = requests.post(f"{alice.base}/upload", data=b"--x\r\nnot a part", timeout=30,
                           headers={**alice.auth, "Idempotency-Key": key,
                                    "Content-Type": "multipart/form-data; boundary=x"})
    assert broken.status_code == 400
    first = _job_id(_post(alice, clips[0], key))
    owner = job_records.get_job(first).owner
    assert idempotency.forget_expired(time.time()) == 0 or \
        idempotency_keys.collection().find_one({"_id": f"{owner}:{key}"})
    idempotency.forget_expired(time.time() + 86400 + 60)
    assert idempotency_keys.collection().find_one({"_id": f"{owner}:{key}"}) is None
    assert _job_id(_post(alice, clips[0], key)) != first  # a day later the key is new again


def test_other_users_identical_upload_is_not_reused_by_default(users, clips, pair):
    bob = users[1]
    job = bob.job(_job_id(_post(bob, clips[0]))).json()
    assert job["reused"] is False and job["status"] in ("queued", "converting", "done")
    assert job["mp3_id"] != pair[0]["mp3_id"]


def test_the_same_file_with_other_options_is_converted_again(users, clips, pair):
    alice = users[0]
    job = alice.job(_job_id(_post(alice, clips[0], data={"bitrate": "96k"}))).json()
    assert job["reused"] is False and job["mp3_id"] != pair[0]["mp3_id"]
    assert job["options"]["bitrate"] == "96k"


def test_reuse_key_holds_options_and_owner(pair, users, monkeypatch):
    from services.gateway.uploads import intake

    first = job_records.get_job(pair[0]["job_id"])
    assert intake.reusable(first.owner, intake.content_key(first.sha256, first.options)).mp3_id == first.mp3_id
    # a bitrate no upload of this file asks for: the test above converts the same clip at 96k, and
    # once that job is done it would rightly be reusable
    other = dict(first.options, bitrate="64k")
    assert intake.reusable(first.owner, intake.content_key(first.sha256, other)) is None
    assert intake.reusable("someone-else", first.content_key) is None
    monkeypatch.setenv("DEDUP_ACROSS_USERS", "1")
    assert intake.reusable("someone-else", first.content_key).mp3_id == first.mp3_id


def test_janitor_keeps_a_shared_mp3_until_its_last_job_expires(users, pair):
    first, second = pair
    alice, mp3_id = users[0], first["mp3_id"]
    job_records.collection().update_one({"_id": first["job_id"]}, {"$set": {"ended_at": time.time() - WEEK}})
    janitor.remove_old_results(time.time(), janitor.Round())
    assert alice.job(first["job_id"]).json()["status"] == "expired"
    assert alice.download(mp3_id).status_code == 200  # the reused job still has it
    sharers = job_records.collection().update_many({"mp3_id": mp3_id, "status": "done"},
                                         {"$set": {"ended_at": time.time() - WEEK}})
    assert sharers.matched_count >= 1  # the reused one, and those of the tests above
    janitor.remove_old_results(time.time(), janitor.Round())
    assert alice.job(second["job_id"]).json()["status"] == "expired"
    assert files.file_info(files.results(), mp3_id) is None
    assert alice.download(mp3_id).status_code == 410


def test_reuses_and_replays_are_counted(stack, pair):
    text = requests.get(f"{stack['metrics']['gateway']}/metrics", timeout=10).text
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("gateway_") and not line.startswith("#")}
    assert values["gateway_uploads_reused_total"] >= 1
    assert values['gateway_idempotent_replays_total{result="replayed"}'] >= 1
    assert values['gateway_idempotent_replays_total{result="conflict"}'] >= 1


def test_deleting_one_of_two_sharing_jobs_leaves_the_other_its_mp3(stack, clips):
    alice = Client(stack["gateway"]).signed_up()
    first, second = _done_pair(alice, clips[1])
    assert second["reused"] is True
    expected = alice.download(first["mp3_id"]).content
    assert requests.delete(f"{alice.base}/jobs/{first['job_id']}", headers=alice.auth, timeout=10).status_code == 204
    assert alice.download(second["mp3_id"]).content == expected
    assert requests.delete(f"{alice.base}/jobs/{second['job_id']}", headers=alice.auth, timeout=10).status_code == 204
    assert files.file_info(files.results(), second["mp3_id"]) is None
