"""Multipart and tus uploads share one record collection: each kind's queries see only its own
records, and tus records of the legacy collection are adopted: they resume, and expire like the others."""
from __future__ import annotations

import time

from services.common.storage import connection, uploads
from services.common.storage.connection import new_id
from services.janitor import Round, remove_abandoned_uploads, remove_expired_tus_uploads


def test_multipart_queries_ignore_tus_records_and_the_reverse(stack):
    owner, multipart, tus = f"kinds-{new_id()}", new_id(), new_id()
    uploads.record_upload(multipart, owner, 10)
    uploads.create_tus(tus, owner, None, 20, "a.mp4", {}, new_id(), None, expires=time.time() + 60)
    uploads.collection().update_many({"owner": owner}, {"$set": {"touched": 0.0}})  # silent for ages
    assert multipart in uploads.silent_since(time.time()) and tus not in uploads.silent_since(time.time())
    assert uploads.find_tus(multipart, owner) is None and uploads.find_tus(tus, owner)["length"] == 20
    assert {(u.upload_id, u.kind, u.bytes) for u in uploads.open_uploads(owner)} == {
        (multipart, uploads.MULTIPART, 10), (tus, uploads.TUS, 20)}
    remove_abandoned_uploads(time.time(), Round())
    assert [u.upload_id for u in uploads.open_uploads(owner)] == [tus]
    uploads.forget_upload(tus)  # a multipart removal leaves a tus record alone
    assert uploads.find_tus(tus, owner) is not None
    uploads.remove_tus(tus)


def test_a_tus_upload_begun_before_the_upgrade_resumes_after_it(stack):
    legacy = connection.records().tus_uploads
    upload_id, owner = new_id(), f"legacy-{new_id()}"
    legacy.insert_one({"_id": upload_id, "owner": owner, "length": 5, "offset": 2, "completed": False,
                       "expires": time.time() + 60, "lock_until": 0.0, "job_id": new_id()})
    assert uploads.find_tus(upload_id, owner) is None  # not where this version reads
    assert uploads.adopt_legacy_tus() >= 1 and uploads.adopt_legacy_tus() == 0  # moved once
    found = uploads.find_tus(upload_id, owner)
    assert found["offset"] == 2 and found["kind"] == uploads.TUS and legacy.find_one({"_id": upload_id}) is None
    assert [u.upload_id for u in uploads.open_uploads(owner)] == [upload_id]  # counted by the quota again
    uploads.remove_tus(upload_id)


def test_expired_tus_records_of_the_legacy_collection_are_swept(stack):
    legacy = connection.records().tus_uploads
    upload_id = new_id()
    legacy.insert_one({"_id": upload_id, "owner": "old", "length": 5, "offset": 0, "completed": False,
                       "expires": time.time() - 1, "lock_until": 0.0})
    tally = Round()
    remove_expired_tus_uploads(time.time(), tally)
    assert legacy.find_one({"_id": upload_id}) is None and tally.removed["tus_expired"] >= 1
