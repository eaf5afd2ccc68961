"""GridFS windowed reads and job leases against the MongoDB stand-in."""
from __future__ import annotations

import io
import os
import time

import pytest

from services.common import storage
from tests.helpers import stored_job


@pytest.fixture
def bucket(stack):
    return storage.mp3s()


def test_ranges_across_chunk_boundaries(bucket):
    data = os.urandom(storage.CHUNK_WINDOW * 261120 + 5000)  # more than one window of chunks
    file_id = storage.new_id()
    storage.store_file(bucket, file_id, "x.bin", io.BytesIO(data), {})
    assert b"".join(storage.read_file(bucket, file_id)) == data
    for start, end in [(0, 0), (261119, 261121), (261120 * 16 - 3, 261120 * 16 + 3), (len(data) - 7, len(data) - 1),
                       (100, len(data) + 500)]:
        assert b"".join(storage.read_file(bucket, file_id, start, end)) == data[start:end + 1]
        for window in (storage.CHUNK_WINDOW, 3, 0, 99):  # whole-file readers start with a full window
            assert b"".join(storage.read_file(bucket, file_id, start, end, first_window=window)) == data[start:end + 1]
    storage.delete_file(bucket, file_id)
    assert storage.file_info(bucket, file_id) is None


def test_store_replaces_a_partial_copy(bucket):
    file_id = storage.new_id()
    storage.store_file(bucket, file_id, "a.mp3", io.BytesIO(b"first" * 100000), {})
    storage.store_file(bucket, file_id, "a.mp3", io.BytesIO(b"second"), {})
    assert b"".join(storage.read_file(bucket, file_id)) == b"second"
    storage.delete_file(bucket, file_id)
    storage.delete_file(bucket, file_id)  # deleting twice is not an error


def test_claims_are_exclusive_until_the_lease_runs_out(stack):
    job = stored_job(owner="u").to_doc()
    first = storage.claim_job(job["_id"], "worker-a", lease_seconds=1)
    assert first.status == "converting" and first.attempts == 1
    assert storage.claim_job(job["_id"], "worker-b", lease_seconds=1) is None
    assert storage.renew_lease(job["_id"], "worker-a", 1)
    assert not storage.renew_lease(job["_id"], "worker-b", 1)
    time.sleep(1.2)
    second = storage.claim_job(job["_id"], "worker-b", lease_seconds=5)
    assert second.worker == "worker-b" and second.attempts == 2
    # The old holder can no longer finish it; the new one can, once.
    assert not storage.finish_job(job["_id"], "worker-a", "done", mp3_id="x")
    assert storage.finish_job(job["_id"], "worker-b", "done", mp3_id="y")
    assert not storage.finish_job(job["_id"], "worker-b", "failed", reason="late")
    final = storage.get_job(job["_id"])
    assert final.status == "done" and final.mp3_id == "y" and "done" in final.times
