"""A URL import's fetch step (services/converter/importing.py) against a local HTTP server and the stack's
MongoDB, with a small MAX_UPLOAD_BYTES: answers past the limit fail with a reason and leave nothing
stored; a fetched source is stored whole and the job turns queued. (The whole flow: tests/e2e/test_url_import.py.)"""
from __future__ import annotations

import pytest

from devkit.source_server import chunked_route, file_route, lying_length_route, redirect_route, source_server
from services.common.jobs import Job, Status
from services.common.storage import files, job_records
from services.common.storage.connection import new_id
from services.converter import importing

LIMIT = 1_000_000
MP4_HEAD = b"\0\0\0\x18ftypmp42" + b"\0" * 1000


@pytest.fixture()
def server():
    with source_server() as running:
        yield running


@pytest.fixture()
def small_limit(stack, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", str(LIMIT))


def fetching_job(url: str) -> Job:
    job = Job(new_id(), owner="import-tester", video_id=new_id(), filename="v.mp4", source_url=url, quota_exempt=True)
    return job_records.create_job(job, Status.FETCHING)


def nothing_stored(job: Job) -> bool:
    return (files.file_info(files.videos(), job.video_id) is None
            and list(files.chunks_from(files.videos(), job.video_id, 0)) == [])


def test_chunked_answer_passing_the_limit_fails_and_stores_nothing(small_limit, server):
    server.routes["/endless"] = chunked_route(MP4_HEAD + b"\0" * (64 * 1024 - len(MP4_HEAD)), 40)  # ~2.6 MB
    job = fetching_job(server.url("/endless"))
    assert importing.run(job, "fetch-tester", 30) == Status.FAILED
    stored = job_records.get_job(job.id)
    assert stored.status == Status.FAILED
    assert f"larger than the limit of {LIMIT} bytes" in stored.reason
    assert nothing_stored(job)


def test_declared_length_past_the_limit_fails_before_reading(small_limit, server):
    server.routes["/big"] = lying_length_route(LIMIT + 1)
    job = fetching_job(server.url("/big"))
    assert importing.run(job, "fetch-tester", 30) == Status.FAILED
    assert f"{LIMIT + 1} bytes, larger than the limit" in job_records.get_job(job.id).reason
    assert nothing_stored(job)


def test_a_source_within_the_limit_is_stored_whole_and_queued(small_limit, server):
    body = MP4_HEAD + bytes(range(256)) * 1000
    server.routes["/a"] = redirect_route("/b")
    server.routes["/b"] = file_route(body)
    job = fetching_job(server.url("/a"))
    assert importing.run(job, "fetch-tester", 30) == Status.QUEUED
    stored = job_records.get_job(job.id)
    assert stored.status == Status.QUEUED and stored.size == len(body) and stored.fetch is None
    assert b"".join(files.read_file(files.videos(), job.video_id)) == body


def test_too_many_redirects_fail(stack, server, monkeypatch):
    monkeypatch.setenv("IMPORT_MAX_REDIRECTS", "2")
    for hop in range(4):
        server.routes[f"/hop{hop}"] = redirect_route(f"/hop{hop + 1}")
    job = fetching_job(server.url("/hop0"))
    assert importing.run(job, "fetch-tester", 30) == Status.FAILED
    assert "more than 2 redirects" in job_records.get_job(job.id).reason
    assert server.hits("/hop3") == 0


def test_a_fetch_held_by_another_worker_is_retried(stack, server):
    from services.common.messaging import TransientError

    job = fetching_job(server.url("/x"))
    assert job_records.claim_fetch(job.id, "other", 60) is not None
    with pytest.raises(TransientError):
        importing.run(job, "fetch-tester", 30)
    assert server.requests == []
