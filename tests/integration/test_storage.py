"""GridFS windowed reads and job leases against the MongoDB stand-in."""
from __future__ import annotations

import io
import os
import time

import pytest

from services.common.storage import files, job_records
from services.common.storage.connection import new_id
from tests.helpers import store_file, stored_job


@pytest.fixture
def bucket(stack):
    return files.results()


def test_ranges_across_chunk_boundaries(bucket):
    data = os.urandom(files.CHUNK_WINDOW * 261120 + 5000)  # more than one window of chunks
    file_id = new_id()
    store_file(bucket, file_id, "x.bin", io.BytesIO(data), {})
    assert b"".join(files.read_file(bucket, file_id)) == data
    for start, end in [(0, 0), (261119, 261121), (261120 * 16 - 3, 261120 * 16 + 3), (len(data) - 7, len(data) - 1),
                       (100, len(data) + 500)]:
        assert b"".join(files.read_file(bucket, file_id, start, end)) == data[start:end + 1]
        for window in (files.CHUNK_WINDOW, 3, 0, 99):  # whole-file readers start with a full window
            assert b"".join(files.read_file(bucket, file_id, start, end, first_window=window)) == data[start:end + 1]
    files.delete_file(bucket, file_id)
    assert files.file_info(bucket, file_id) is None


def test_store_replaces_a_partial_copy(bucket):
    file_id = new_id()
    store_file(bucket, file_id, "a.mp3", io.BytesIO(b"first" * 100000), {})
    store_file(bucket, file_id, "a.mp3", io.BytesIO(b"second"), {})
    assert b"".join(files.read_file(bucket, file_id)) == b"second"
    files.delete_file(bucket, file_id)
    files.delete_file(bucket, file_id)  # deleting twice is not an error


def test_a_file_attached_to_a_writer_is_stored_by_its_close_and_removed_by_its_abort(bucket):
    """A result's waveform goes with the result's own close: two files from one chunk insert and one entry insert."""
    result, small, large = os.urandom(files.CHUNK_SIZE + 1000), b'{"data": [1, 2]}', os.urandom(files.CHUNK_SIZE + 7)
    ids = [new_id() for _ in range(3)]
    with files.open_writer(bucket, ids[0], "a.mp3", {"job_id": "j"}) as writer:
        writer.write(result)
        writer.attach(ids[1], "a.json", {"job_id": "j", "kind": "waveform"}, small)
        writer.attach(ids[2], "b.bin", {}, large)  # more than one chunk still works
        assert files.file_info(bucket, ids[1]) is None  # nothing of it before the close
    for file_id, data in zip(ids, (result, small, large), strict=True):
        assert b"".join(files.read_file(bucket, file_id)) == data
        assert files.file_info(bucket, file_id)["length"] == len(data)
    assert files.file_info(bucket, ids[1])["metadata"] == {"job_id": "j", "kind": "waveform"}

    aborted = [new_id(), new_id()]
    with pytest.raises(RuntimeError), files.open_writer(bucket, aborted[0], "b.mp3", {}) as writer:
        writer.write(os.urandom(files.CHUNK_SIZE * files.CHUNK_WINDOW + 10))  # a window reached storage
        writer.attach(aborted[1], "b.json", {}, small)
        raise RuntimeError("ffmpeg failed")
    for file_id in aborted:
        assert files.file_info(bucket, file_id) is None and list(files.chunks_from(bucket, file_id, 0)) == []
    for file_id in ids:
        files.delete_file(bucket, file_id)


def test_claims_are_exclusive_until_the_lease_runs_out(stack):
    job = stored_job(owner="u").to_doc()
    first = job_records.claim_job(job["_id"], "worker-a", lease_seconds=1)
    assert first.status == "converting" and first.attempts == 1
    assert job_records.claim_job(job["_id"], "worker-b", lease_seconds=1) is None
    assert job_records.renew_lease(job["_id"], "worker-a", 1)
    assert not job_records.renew_lease(job["_id"], "worker-b", 1)
    time.sleep(1.2)
    second = job_records.claim_job(job["_id"], "worker-b", lease_seconds=5)
    assert second.worker == "worker-b" and second.attempts == 2
    # The old holder can no longer finish it; the new one can, once.
    assert not job_records.finish_job(job["_id"], "worker-a", "done", mp3_id="x")
    assert job_records.finish_job(job["_id"], "worker-b", "done", mp3_id="y")
    assert not job_records.finish_job(job["_id"], "worker-b", "failed", reason="late")
    final = job_records.get_job(job["_id"])
    assert final.status == "done" and final.mp3_id == "y" and "done" in final.times


def test_prepare_gives_both_buckets_their_unique_chunk_index(stack, monkeypatch):
    """Every windowed read asks for a file's chunks by (files_id, n): without the index each is a scan.
    On databases nothing has written to yet, run twice, as every gateway start does."""
    from services.common import storage

    monkeypatch.setenv("MONGO_VIDEOS_DB", f"prepare-videos-{new_id()}")
    monkeypatch.setenv("MONGO_MP3S_DB", f"prepare-results-{new_id()}")
    storage.prepare()
    storage.prepare()
    for bucket in (files.videos(), files.results()):
        assert any(index.get("unique") for index in bucket.chunks.index_information().values())
