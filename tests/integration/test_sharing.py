"""Shared MP3s (dedup) against the MongoDB stand-in: a file goes only with its last user, a remover
and a new sharer never cross, and the writer's SHA-256 is that of the bytes written."""
from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import pytest

from services.common import sharing
from services.common.jobs import Status
from services.common.storage import files, job_records, shares
from services.common.storage.connection import new_id
from tests.helpers import find_jobs, store_file, stored_job


@pytest.fixture
def mp3(stack):
    file_id = new_id()
    store_file(files.results(), file_id, "a.mp3", io.BytesIO(b"mp3" * 1000), {})
    yield file_id
    files.delete_file(files.results(), file_id)
    shares.collection().delete_many({"_id": file_id})


def _done(mp3_id: str):
    return job_records.create_job(stored_job().__class__(new_id(), owner="u1", video_id="v", mp3_id=mp3_id),
                              Status.DONE)


def test_writer_hashes_what_it_writes(stack):
    data = os.urandom(3 * files.CHUNK_SIZE + 17)
    with files.open_writer(files.videos(), new_id(), "x", {}) as writer:
        for start in range(0, len(data), 100_000):
            writer.write(data[start:start + 100_000])
    files.delete_file(files.videos(), writer.file_id)
    assert writer.sha256 == hashlib.sha256(data).hexdigest()


def test_file_goes_with_its_last_user_only(mp3):
    first, second = _done(mp3), _done(mp3)
    assert sharing.release(mp3, first.id) is False
    assert files.file_info(files.results(), mp3) is not None
    assert sharing.release(mp3, first.id) is False  # releasing twice counts once
    assert sharing.release(mp3, second.id) is True
    assert files.file_info(files.results(), mp3) is None
    assert sharing.pin(mp3) is False  # a late sharer converts instead


def test_sharer_waits_for_a_remover_and_sees_its_outcome(mp3):
    only = _done(mp3)
    assert sharing._take_lease(mp3) is not None  # a remover in the middle of its steps
    assert sharing._take_lease(mp3) is None  # a second one must wait
    outcome = []
    sharer = threading.Thread(target=lambda: outcome.append(sharing.pin(mp3)))
    sharer.start()
    time.sleep(0.3)
    assert not outcome  # still waiting for the remover
    # The remover removes the file while it holds the lease, then gives the lease back (sharing.release
    # does it in this order); the sharer, let in only then, must not keep a file that is gone.
    files.delete_file(files.results(), mp3)
    shares.collection().delete_many({"_id": mp3})
    sharer.join()
    assert outcome == [False]
    assert only.id


def test_a_dead_removers_lease_is_taken_over(mp3):
    job = _done(mp3)
    shares.collection().insert_one({"_id": mp3, "until": time.time() - 1, "holder": "dead"})
    assert sharing.pin(mp3) is True
    assert sharing.release(mp3, job.id) is True
    assert shares.collection().find_one({"_id": mp3}) is None  # given back


def test_an_mp3_gone_before_the_pin_means_converting_after_all(stack):
    from services.gateway.uploads import intake
    from services.gateway.uploads.intake import StoredUpload

    owner, sha = f"u-{new_id()}", hashlib.sha256(b"clip").hexdigest()
    gone = new_id()  # its remover won the race: the file is no more
    source = stored_job(owner=owner, mp3_id=gone, content_key=intake.content_key(sha, {}))
    job_records.finish_job(source.id, None, Status.DONE, mp3_id=gone)
    video_id = new_id()
    store_file(files.videos(), video_id, "clip.mp4", io.BytesIO(b"clip"), {})
    job = intake.create_job({"sub": owner, "email": "o@example.com"},
                            StoredUpload(video_id, "clip.mp4", 4, None, sha256=sha))
    assert job.status == Status.QUEUED and not job.reused and job.mp3_id is None
    assert files.file_info(files.videos(), video_id) is not None  # its own video, to convert


def test_a_job_id_chosen_beforehand_makes_one_job_when_accepted_twice(stack):
    from services.gateway.uploads import intake
    from services.gateway.uploads.intake import StoredUpload

    owner, job_id, video_id = f"u-{new_id()}", new_id(), new_id()
    stored = StoredUpload(video_id, "clip.mp4", 4, None, sha256=hashlib.sha256(b"other").hexdigest())
    user = {"sub": owner, "email": "o@example.com"}
    first = intake.create_job(user, stored, job_id=job_id)
    again = intake.create_job(user, stored, job_id=job_id)
    assert first.id == again.id == job_id
    assert len(find_jobs({"owner": owner})) == 1
