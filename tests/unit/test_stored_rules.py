"""Rules over stored records, without a database: a user's quota usage and an Idempotency-Key's repeat."""
from __future__ import annotations

from services.common.idempotency import STALE_SECONDS, repeat_decision
from services.common.quota_usage import tally
from services.common.storage.job_records import Holding
from services.common.storage.uploads import MULTIPART, TUS, OpenUpload


def test_usage_counts_active_jobs_files_reservations_and_unfinished_uploads():
    held = [Holding("j1", "queued", "v1", None, 0), Holding("j2", "converting", "v2", None, 500),
            Holding("j3", "done", "v3", "m3", 0)]
    uploads = [OpenUpload("v1", MULTIPART, 70, False),  # its job exists: counted there
               OpenUpload("u1", MULTIPART, 30, False), OpenUpload("t1", TUS, 40, False),
               OpenUpload("t2", TUS, 90, True)]  # a finished tus upload: its job counts it
    used = tally(held, uploads, file_bytes=1000, started=[1.0, 2.0])
    assert (used.active_jobs, used.stored_bytes, used.uploads_24h) == (4, 1000 + 500 + 30 + 40, 2)


def test_a_tus_upload_whose_job_exists_counts_once_even_before_it_is_marked_completed():
    held = [Holding("j1", "queued", "t1", None, 0)]
    used = tally(held, [OpenUpload("t1", TUS, 40, False)], file_bytes=40, started=[1.0])
    assert (used.active_jobs, used.stored_bytes) == (1, 40)


def test_usage_leaves_out_the_upload_being_confirmed_and_the_job_being_admitted_again():
    held = [Holding("j2", "converting", "v2", None, 500)]
    uploads = [OpenUpload("u1", MULTIPART, 30, False)]
    used = tally(held, uploads, file_bytes=0, started=[], excluding="u1", excluding_job="j2")
    assert (used.active_jobs, used.stored_bytes) == (1, 0)


def test_a_repeated_key_replays_waits_or_takes_over():
    now, day = 10_000.0, 86400.0
    assert repeat_decision({"created": now - 5, "touched": now, "job_id": "j"}, now, day) == "replay"
    assert repeat_decision({"created": now - 5, "touched": now, "job_id": None}, now, day) == "wait"
    assert repeat_decision({"created": now - 5, "touched": now - STALE_SECONDS - 1, "job_id": None}, now, day) == "take"
    assert repeat_decision({"created": now - day - 1, "touched": now, "job_id": "j"}, now, day) == "take"
