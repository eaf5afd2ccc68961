"""GET /jobs's parameters and cursor (services/gateway/job_listing.py): what parses, what is refused
(400 in the API's error shape), and that a cursor comes back as the position it was made from."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from werkzeug.datastructures import MultiDict

from services.common.jobs import Job
from services.common.storage.job_records import JobFilter
from services.common.web import ApiError
from services.gateway import job_listing
from services.gateway.conditional import strong_etag


def parse(query: list[tuple[str, str]]) -> job_listing.Page:
    return job_listing.parse(MultiDict(query))


def refused(query: list[tuple[str, str]]) -> str:
    with pytest.raises(ApiError) as caught:
        parse(query)
    assert caught.value.status == 400
    return caught.value.code


def test_defaults_and_bounds():
    page = parse([])
    assert (page.limit, page.offset, page.after, page.shown) == (job_listing.LIMIT_DEFAULT, 0, None, JobFilter())
    assert parse([("limit", str(job_listing.LIMIT_MAX))]).limit == job_listing.LIMIT_MAX
    for query in ([("limit", "0")], [("limit", "101")], [("limit", "x")], [("offset", "-1")]):
        assert refused(query) == "invalid_parameter"


def test_statuses_repeated_or_comma_separated_in_a_canonical_order():
    assert parse([("status", "failed,done"), ("status", "queued")]).shown.statuses == ("queued", "done", "failed")
    assert parse([("status", "done"), ("status", "done")]).shown.statuses == ("done",)
    assert refused([("status", "done,weird")]) == "invalid_parameter"
    assert refused([("status", "")]) == "invalid_parameter"


@pytest.mark.parametrize("text,expected", [
    ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=timezone.utc)),
    ("2026-01-31t13:00:00.5+01:00", datetime(2026, 1, 31, 12, 0, 0, 500000, tzinfo=timezone.utc)),
    ("2026-01-31T13:00:00 01:00", datetime(2026, 1, 31, 12, tzinfo=timezone.utc)),  # '+' unencoded in a query
])
def test_times_are_rfc3339(text, expected):
    assert parse([("created_after", text)]).shown.created_after == expected.timestamp()


@pytest.mark.parametrize("text", ["2026-01-31", "2026-01-31T12:00:00", "yesterday", "2026-02-30T00:00:00Z",
                                  "1738324800", "2026-01-31T25:00:00Z"])
def test_times_without_offset_or_invalid_are_refused(text):
    assert refused([("created_before", text)]) == "invalid_parameter"


def job(created: float, job_id: str) -> Job:
    return Job(job_id, "owner", "video", created=created)


def test_a_cursor_returns_its_position_for_the_same_filters_only():
    shown = JobFilter(("done",), 1.5, None)
    cursor = job_listing.encode_cursor(job(1764900000.123456789, "abc"), shown)
    page = parse([("status", "done"), ("created_after", "1970-01-01T00:00:01.5Z"), ("cursor", cursor)])
    assert page.after == (1764900000.123456789, "abc")
    assert refused([("status", "failed"), ("created_after", "1970-01-01T00:00:01.5Z"), ("cursor", cursor)]) \
        == "invalid_cursor"
    assert refused([("status", "done"), ("created_after", "1970-01-01T00:00:01.5Z"), ("cursor", cursor),
                    ("offset", "3")]) == "invalid_parameter"


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", ["", "not base64!", "AAAA", forged({"a": 1}), forged([1, 2]),
                                    forged(["1", "id", "k"]), forged([1.0, "", "k"]), forged([True, "id", "k"]),
                                    forged([1.0, "x" * 65, "k"]), forged([1.0, "id", None]), "x" * 300,
                                    base64.urlsafe_b64encode(b"[NaN, \"id\", \"k\"]").decode(),
                                    base64.urlsafe_b64encode(b"\xff\xfe").decode(), forged([1.0, "id", "k"])])
def test_bad_cursors_are_400_invalid_cursor(cursor):
    assert refused([("cursor", cursor)]) == "invalid_cursor"


def test_the_next_link_repeats_filters_and_limit():
    args = MultiDict([("status", "done"), ("status", "failed"), ("created_before", "2026-01-31T12:00:00+01:00"),
                      ("limit", "5"), ("cursor", "old")])
    link = job_listing.next_link(job_listing.parse(MultiDict([("limit", "5")])), args, "NEW")
    assert link == ('</jobs?status=done&status=failed&created_before=2026-01-31T12%3A00%3A00%2B01%3A00'
                    '&limit=5&cursor=NEW>; rel="next"')


def test_the_etag_is_a_digest_of_the_bytes():
    assert strong_etag(b'{"a":1}') == strong_etag(b'{"a":1}') != strong_etag(b'{"a":2}')
    assert len(strong_etag(b"")) == 22 and '"' not in strong_etag(b"x")
