"""The transition table is the one place that says which status moves exist: the guard every status
write of services/common/storage/job_records.py builds its filter from agrees with it on every pair."""
from __future__ import annotations

import itertools

import pytest

from services.common.jobs import TRANSITIONS, Status, may_move, sources_of
from services.common.storage.job_records import IllegalMove, status_guard

PAIRS = list(itertools.product(Status, Status))


@pytest.mark.parametrize("current,target", PAIRS, ids=[f"{c}->{t}" for c, t in PAIRS])
def test_a_move_from_a_known_status_is_guarded_by_the_table(current, target):
    if target in TRANSITIONS[current]:
        assert may_move(current, target)
        assert status_guard(target, current) == {"status": str(current)}
    else:
        assert not may_move(current, target)
        with pytest.raises(IllegalMove):
            status_guard(target, current)


@pytest.mark.parametrize("target", list(Status))
def test_a_move_from_any_status_matches_exactly_the_table_sources(target):
    allowed = {str(current) for current in Status if target in TRANSITIONS[current]}
    assert set(status_guard(target)["status"]["$in"]) == allowed == set(sources_of(target))


def test_requeueing_a_reused_job_is_an_edge_and_ended_jobs_only_expire_otherwise():
    assert may_move(Status.DONE, Status.QUEUED)
    assert TRANSITIONS[Status.FAILED] == TRANSITIONS[Status.CANCELLED] == {Status.EXPIRED}
    assert TRANSITIONS[Status.EXPIRED] == frozenset()
