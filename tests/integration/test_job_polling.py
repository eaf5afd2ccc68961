"""Polling that costs nothing when nothing changed, and listings that page: through the real gateway
and MongoDB stand-in. GET /jobs/<id> and GET /jobs carry a strong ETag and answer If-None-Match with
304 and no body; the ETag moves with every change of the view. GET /jobs pages by cursor (Link
rel="next") without duplicates or gaps while jobs arrive, filters by status and creation time, and
refuses a bad cursor or filter with 400 in the API's error shape."""
from __future__ import annotations

import base64
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests

from devkit.client import Client
from devkit.media import make_media
from devkit.metrics import metric_value
from services.common import config
from services.common.storage import job_records
from tests.helpers import stored_job
from tests.integration.test_api_errors import error_code

NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


def signed_up(stack) -> tuple[Client, str]:
    user = Client(stack["gateway"]).signed_up()
    return user, json.loads(base64.urlsafe_b64decode(user.token.split(".")[1] + "=="))["sub"]


def queued_job(owner: str, created: float | None = None) -> str:
    """A queued job of `owner`'s that nothing converts (published: the outbox leaves it alone)."""
    job_id = stored_job(owner=owner, published=True).id
    if created is not None:
        job_records.collection().update_one({"_id": job_id}, {"$set": {"created": created}})
    return job_id


def in_order(owner: str) -> list[str]:
    """The owner's job ids in the listing's order, worked out here: newest first, ties by id."""
    docs = job_records.collection().find({"owner": owner}, {"created": 1})
    return [doc["_id"] for doc in sorted(docs, key=lambda doc: (doc["created"], doc["_id"]), reverse=True)]


def get(user: Client, path: str, **headers) -> requests.Response:
    return requests.get(f"{user.base}{path}", headers={**user.auth, **headers}, timeout=10)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- one job: ETag and 304


def test_an_unchanged_job_answers_304_without_a_body(stack):
    user, sub = signed_up(stack)
    job_id = queued_job(sub)
    first = user.job(job_id)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and re.fullmatch(r'"[A-Za-z0-9_-]{22}"', etag)
    assert first.headers["Cache-Control"] == "private, no-cache"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = get(user, f"/jobs/{job_id}", **{"If-None-Match": sent})
        assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag), sent
        assert again.headers["Cache-Control"] == "private, no-cache"
    stale = get(user, f"/jobs/{job_id}", **{"If-None-Match": '"something-else"'})
    assert (stale.status_code, stale.headers["ETag"], stale.json()) == (200, etag, first.json())


def test_the_etag_moves_with_every_change_of_the_view(stack):
    user, sub = signed_up(stack)
    job_id = queued_job(sub)
    seen = [user.job(job_id).headers["ETag"]]

    def changed() -> dict:
        response = get(user, f"/jobs/{job_id}", **{"If-None-Match": seen[-1]})
        assert response.status_code == 200 and response.headers["ETag"] not in seen
        seen.append(response.headers["ETag"])
        return response.json()

    assert job_records.claim_job(job_id, "poller", 60) is not None
    assert changed()["status"] == "converting"
    job_records.set_progress(job_id, "poller", 40.0, 12.0)
    assert changed()["progress"] == 40.0
    assert requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10).status_code == 200
    assert changed()["status"] == "cancelled"
    assert get(user, f"/jobs/{job_id}", **{"If-None-Match": seen[-1]}).status_code == 304


def test_a_poll_of_an_unchanged_job_is_answered_from_its_kept_body_and_a_change_never_is(stack):
    """The gateway keeps each view's body by its ETag: polls of the same revision send the same bytes
    without building the view again (counted as cached), and the first poll after any change of the job
    shows the change."""
    user, sub = signed_up(stack)
    job_id = queued_job(sub)
    workers = config.env_int("GUNICORN_WORKERS")
    before = _cached_views(stack)
    polls = [user.job(job_id) for _ in range(workers + 1)]  # one process at least answers twice
    assert {(p.status_code, p.content, p.headers["ETag"]) for p in polls} == {(200, polls[0].content,
                                                                              polls[0].headers["ETag"])}
    assert _cached_views(stack) >= before + 1
    assert job_records.claim_job(job_id, "poller", 60) is not None
    seen = {polls[0].headers["ETag"]}
    for progress in (10.0, 20.0):
        job_records.set_progress(job_id, "poller", progress, 5.0)
        views = [user.job(job_id) for _ in range(workers + 1)]
        assert {(view.json()["status"], view.json()["progress"]) for view in views} == {("converting", progress)}
        etags = {view.headers["ETag"] for view in views}
        assert len(etags) == 1 and not etags & seen
        seen |= etags


def _cached_views(stack) -> float:
    return metric_value(stack["metrics"]["gateway"], "gateway_job_views_total", how="cached") or 0


def test_a_condition_never_reveals_another_users_job(stack):
    owner, sub = signed_up(stack)
    job_id = queued_job(sub)
    other, _ = signed_up(stack)
    response = get(other, f"/jobs/{job_id}", **{"If-None-Match": "*"})
    assert (response.status_code, error_code(response)) == (404, "not_found")


def test_polls_at_once_share_revision_reads_and_each_sees_only_its_own(stack):
    """Many polls at the same moment: reads of revisions are shared (fewer reads than polls), and in a
    shared read each poll still gets only what its own match allows: the owner their job, another user
    a 404 for the same id, a deleted job a 404 at every poll after its deletion."""
    owner, sub = signed_up(stack)
    other, _ = signed_up(stack)
    mine, gone = queued_job(sub), queued_job(sub)
    etag = owner.job(mine).headers["ETag"]
    job_records.delete_job(gone)
    asks = [(owner, mine, 304), (other, mine, 404), (owner, gone, 404)] * 40
    reads_before, polls_before = _revision_reads(stack)
    with ThreadPoolExecutor(max_workers=LANES) as pool:  # a kept-alive connection a lane, under the cap per address
        lanes = list(pool.map(lambda lane: _polled(asks[lane::LANES], mine, etag), range(LANES)))
    answers = [lanes[i % LANES][i // LANES] for i in range(len(asks))]
    assert [answer.status_code for answer in answers] == [ask[2] for ask in asks]
    assert all(error_code(a) == "not_found" for a in answers if a.status_code == 404)
    reads_after, polls_after = _revision_reads(stack)
    reads, polls = reads_after - reads_before, polls_after - polls_before
    assert polls == len(asks) and reads < polls, (reads, polls)


LANES = 24


def _polled(asks: list[tuple], mine: str, etag: str) -> list[requests.Response]:
    """Each of `asks` (user, job id, _) polled in turn on one connection: `etag` for `mine`, * for others."""
    with requests.Session() as session:
        return [session.get(f"{user.base}/jobs/{job_id}", timeout=10, headers={
            **user.auth, "If-None-Match": etag if job_id == mine else "*"}) for user, job_id, _ in asks]


def _revision_reads(stack) -> tuple[float, float]:
    """Reads of revisions sent by the gateways, and the polls they answered."""
    url = stack["metrics"]["gateway"]
    return (metric_value(url, "gateway_revision_reads_count") or 0,
            metric_value(url, "gateway_revision_reads_sum") or 0)


def test_polling_a_real_conversion_gets_304_until_it_changes(stack, tmp_path):
    """A client that sends back the ETag it has: a 200 for each change it sees, a 304 for every poll
    in between, and the last 200 is the done job."""
    user, _ = signed_up(stack)
    job_id = user.upload(make_media(tmp_path / "v.mp4", seconds=2)).json()["job_id"]
    etag, view, answers = None, None, []
    for _ in range(3000):  # ends on done, bounded so a stuck job fails the test instead of hanging it
        response = get(user, f"/jobs/{job_id}", **({"If-None-Match": etag} if etag else {}))
        answers.append(response.status_code)
        if response.status_code == 200:
            etag, view = response.headers["ETag"], response.json()
        else:
            assert (response.status_code, response.content, response.headers["ETag"]) == (304, b"", etag)
        if view["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert view["status"] == "done" and view["download_url"]
    assert set(answers) <= {200, 304}
    assert user.job(job_id).headers["ETag"] == etag  # the done job's tag stays put


# ---------------------------------------------------------------- listings


def walk(user: Client, first: str, between=lambda: None) -> list[str]:
    """Every job id of a listing, following Link rel="next" (and checking next_cursor agrees with it)."""
    ids, url = [], first
    while url:
        response = get(user, url)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [job["job_id"] for job in body["jobs"]]
        link = NEXT.search(response.headers.get("Link", ""))
        assert (link is None) == (body["next_cursor"] is None)
        url = link.group(1) if link else None
        if url:
            assert f"cursor={body['next_cursor']}" in url
        between()
    return ids


def test_pages_walk_every_job_once_while_new_ones_arrive(stack):
    user, sub = signed_up(stack)
    base = 1_700_000_000.0
    # 23 jobs, five of them created in the same instant: the id breaks the tie
    existing = [queued_job(sub, base + i) for i in range(18)] + [queued_job(sub, base + 100) for _ in range(5)]
    expected = in_order(sub)
    assert sorted(expected) == sorted(existing)
    arrived = []
    walked = walk(user, "/jobs?limit=4", between=lambda: arrived.append(queued_job(sub)))
    assert walked == expected  # newest first, no duplicate, no gap: the new jobs are before the first page
    newest = get(user, f"/jobs?limit={len(arrived)}").json()["jobs"]
    assert [job["job_id"] for job in newest] == arrived[::-1]
    # the legacy offset still pages (and ends in a cursor to go on with)
    assert [j["job_id"] for j in get(user, "/jobs?limit=3&offset=2").json()["jobs"]] == (arrived[::-1] + expected)[2:5]


def test_the_last_page_has_no_next_link_and_an_empty_listing_is_a_page(stack):
    user, sub = signed_up(stack)
    empty = get(user, "/jobs")
    assert empty.json() == {"jobs": [], "limit": 20, "offset": 0, "next_cursor": None} and "Link" not in empty.headers
    ids = [queued_job(sub) for _ in range(3)]
    full = get(user, "/jobs?limit=3")
    assert [j["job_id"] for j in full.json()["jobs"]] == ids[::-1] and "Link" not in full.headers


def test_filters_by_status_and_creation_time(stack):
    user, sub = signed_up(stack)
    base = 1_750_000_000.0
    ids = [queued_job(sub, base + i) for i in range(6)]
    for job_id, status in zip(ids, ["done", "failed", "cancelled", "done", "queued", "expired"], strict=True):
        job_records.collection().update_one({"_id": job_id}, {"$set": {"status": status}})
    assert walk(user, "/jobs?status=done,failed&limit=1") == [ids[3], ids[1], ids[0]]
    assert walk(user, "/jobs?status=done&status=expired&limit=2") == [ids[5], ids[3], ids[0]]
    window = f"created_after={iso(base + 1)}&created_before={iso(base + 4)}"
    assert walk(user, f"/jobs?{window}&limit=1") == [ids[3], ids[2]]  # both ends excluded
    assert walk(user, f"/jobs?{window}&status=cancelled") == [ids[2]]
    plus = requests.get(  # an offset written with '+', percent-encoded
        f"{user.base}/jobs", params={"created_after": iso(base + 4).replace("Z", "+00:00")}, headers=user.auth,
        timeout=10)
    assert [j["job_id"] for j in plus.json()["jobs"]] == [ids[5]]


@pytest.mark.parametrize("query,code", [
    ("cursor=garbage", "invalid_cursor"),
    ("cursor=" + base64.urlsafe_b64encode(b'[1.0, "x", "0"]').decode(), "invalid_cursor"),
    ("status=done,weird", "invalid_parameter"),
    ("created_after=yesterday", "invalid_parameter"),
    ("created_before=2026-01-31T12:00:00", "invalid_parameter"),  # no offset: which day it is depends on where
    ("limit=101", "invalid_parameter"),
])
def test_bad_cursor_or_filter_is_400(stack, query, code):
    user, _ = signed_up(stack)
    response = get(user, f"/jobs?{query}")
    assert (response.status_code, error_code(response)) == (400, code)


def test_a_cursor_for_other_filters_is_refused(stack):
    user, sub = signed_up(stack)
    for _ in range(2):
        queued_job(sub)
    cursor = get(user, "/jobs?limit=1&status=queued").json()["next_cursor"]
    assert get(user, f"/jobs?limit=1&status=queued&cursor={cursor}").status_code == 200
    response = get(user, f"/jobs?limit=1&status=done&cursor={cursor}")
    assert (response.status_code, error_code(response)) == (400, "invalid_cursor")


def test_an_unchanged_listing_answers_304_with_its_link(stack):
    user, sub = signed_up(stack)
    for _ in range(3):
        queued_job(sub)
    first = get(user, "/jobs?limit=2")
    again = get(user, "/jobs?limit=2", **{"If-None-Match": first.headers["ETag"]})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["ETag"] == first.headers["ETag"] and again.headers["Link"] == first.headers["Link"]
    queued_job(sub)
    changed = get(user, "/jobs?limit=2", **{"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]


def test_an_index_serves_the_listing(stack):
    """The gateway's start (storage.prepare) made both listing indexes (the stand-in reports no directions)."""
    indexes = job_records.collection().index_information().values()
    fields = {tuple(name for name, _ in index["key"]) for index in indexes}
    assert {tuple(name for name, _ in keys) for keys in job_records.LISTING_INDEXES} <= fields


def test_ties_are_ordered_by_id_at_every_page_edge(stack):
    """Many jobs in few instants: every page size, by offset and by cursor, gives exactly the total order."""
    owner = f"ties-{time.time_ns()}"
    created = [1_760_000_000.0 + (i % 4) for i in range(14)]  # four groups of three or four
    for ts in created:
        queued_job(owner, ts)
    expected = in_order(owner)
    everything = job_records.JobFilter()
    for limit in range(1, 8):
        by_offset = [job.id for offset in range(0, len(expected), limit)
                     for job in job_records.list_jobs(owner, everything, limit, offset)]
        by_cursor, after = [], None
        while page := job_records.list_jobs(owner, everything, limit, after=after):
            by_cursor += [job.id for job in page]
            after = (page[-1].created, page[-1].id)
        assert by_offset == by_cursor == expected, limit
