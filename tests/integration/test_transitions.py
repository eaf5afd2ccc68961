"""Every edge of the transition table walked against the MongoDB stand-in: from each status, each
status write of services/common/storage/job_records.py succeeds exactly where the table allows the
move, and leaves the job as it was everywhere else."""
from __future__ import annotations

import itertools

import pytest

from services.common.jobs import TRANSITIONS, Status
from services.common.storage import job_records
from tests.helpers import stored_job

WORKER = "walker"


def _to_queued(job_id: str, current: Status) -> bool:
    # Three writes make a job queued: a converter giving it back, a reused job unshared, a URL import fetched.
    return (job_records.release_job(job_id, WORKER) or job_records.requeue_unshared(job_id)
            or job_records.fetched(job_id, WORKER, 1, "0" * 64, None))


def _to_expired(job_id: str, current: Status) -> bool:
    try:
        return job_records.expire_job(job_id, current)
    except job_records.IllegalMove:
        return False


MOVES = {
    Status.FETCHING: lambda job_id, _: job_records.claim_fetch(job_id, WORKER, 60) is not None,  # a fetcher's claim
    Status.QUEUED: _to_queued,
    Status.CONVERTING: lambda job_id, _: job_records.claim_job(job_id, WORKER, 60) is not None,
    Status.DONE: lambda job_id, _: job_records.finish_job(job_id, None, Status.DONE, mp3_id="m" * 24),
    Status.FAILED: lambda job_id, _: job_records.finish_job(job_id, None, Status.FAILED, reason="walked"),
    Status.CANCELLED: lambda job_id, _: job_records.cancel_job({"_id": job_id}) is not None,
    Status.EXPIRED: _to_expired,
}
PAIRS = list(itertools.product(Status, Status))


def _job_in(status: Status) -> str:
    """A job in `status` that every guard but the status one lets through (held by WORKER, lease run
    out, reused), so that only the table decides."""
    job = stored_job(owner="transition-walker")
    job_records.collection().update_one({"_id": job.id}, {"$set": {
        "status": str(status), "worker": WORKER, "lease_until": 0.0, "reused": True}})
    return job.id


@pytest.mark.parametrize("current,target", PAIRS, ids=[f"{c}->{t}" for c, t in PAIRS])
def test_each_move_succeeds_exactly_where_the_table_allows_it(stack, current, target):
    job_id = _job_in(current)
    moved = MOVES[target](job_id, current)
    allowed = target in TRANSITIONS[current]
    assert moved == allowed
    assert job_records.get_job(job_id).status == (target if allowed else current)
    job_records.collection().delete_one({"_id": job_id})
