"""GET /jobs: its query parameters, its opaque cursor and its RFC 8288 `Link: <…>; rel="next"`.

Pages are keyset pages in job_records.LISTING_ORDER (newest first, ties by id): the cursor holds the
(created, id) of a page's last job and the filters it was made for, so following `next` walks every job
once even while new ones arrive. `offset` still works (older clients) but shifts when jobs are added.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict

from services.common.jobs import Job, Status
from services.common.storage.job_records import JobFilter
from services.common.web import ApiError

LIMIT_DEFAULT, LIMIT_MAX = 20, 100
OFFSET_MAX = 100_000
MAX_ID_CHARS = 64
MAX_CURSOR_CHARS = 256  # ours are under 120
# RFC 3339 date-time (section 5.6); a space before the offset is a '+' a query string turned into one
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+ -]\d\d:\d\d)")


@dataclass(frozen=True)
class Page:
    """What one GET /jobs asks for."""

    shown: JobFilter
    limit: int
    offset: int = 0
    after: tuple[float, str] | None = None  # (created, id) of the previous page's last job


def bad(message: str, code: str = "invalid_parameter") -> ApiError:
    return ApiError(400, code, message)


def parse(args: MultiDict) -> Page:
    """The request's page; 400 (invalid_parameter, invalid_cursor) for anything malformed."""
    shown = JobFilter(statuses(args), timestamp(args, "created_after"), timestamp(args, "created_before"))
    limit, offset = integer(args, "limit", LIMIT_DEFAULT), integer(args, "offset", 0)
    if not 1 <= limit <= LIMIT_MAX or not 0 <= offset <= OFFSET_MAX:
        raise bad(f"limit must be 1-{LIMIT_MAX} and offset 0-{OFFSET_MAX}")
    cursor = args.get("cursor")
    if cursor is None:
        return Page(shown, limit, offset)
    if offset:
        raise bad("give cursor or offset, not both")
    return Page(shown, limit, after=decode_cursor(cursor, shown))


def integer(args: MultiDict, name: str, default: int) -> int:
    try:
        return int(args.get(name, default))
    except ValueError:
        raise bad("limit and offset must be integers") from None


def statuses(args: MultiDict) -> tuple[str, ...]:
    """status=done&status=failed or status=done,failed; in the order of Status, each once."""
    given = {value.strip() for raw in args.getlist("status") for value in raw.split(",")}
    unknown = given - set(Status)
    if unknown:
        raise bad(f"status must be one or several of {', '.join(Status)} (got {', '.join(sorted(unknown))})")
    return tuple(str(status) for status in Status if status in given)


def timestamp(args: MultiDict, name: str) -> float | None:
    raw = args.get(name)
    if raw is None:
        return None
    matched = _RFC3339.fullmatch(raw.strip())
    if not matched:
        raise bad(f"{name} must be an RFC 3339 date-time with its offset, e.g. 2026-01-31T12:00:00Z")
    text = raw.strip()
    if matched.group(2).startswith(" "):
        text = text[:matched.start(2)] + "+" + text[matched.start(2) + 1:]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:  # a date that does not exist (February 30th)
        raise bad(f"{name} is not a valid date-time") from None


def _filter_key(shown: JobFilter) -> str:
    """What binds a cursor to its filters: following it with others would skip or repeat jobs."""
    given = json.dumps([shown.statuses, shown.created_after, shown.created_before]).encode()
    return hashlib.sha256(given).hexdigest()[:12]


def encode_cursor(last: Job, shown: JobFilter) -> str:
    raw = json.dumps([last.created, last.id, _filter_key(shown)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _foreign_cursor() -> ApiError:
    return bad("cursor is not one this API gave; follow the Link header or next_cursor", "invalid_cursor")


def decode_cursor(cursor: str, shown: JobFilter) -> tuple[float, str]:
    """(created, id) of the cursor's job; 400 invalid_cursor if it is not one of ours or not for `shown`."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise _foreign_cursor()
    try:
        created, job_id, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise _foreign_cursor() from None
    well_formed = (isinstance(created, (int, float)) and not isinstance(created, bool) and math.isfinite(created)
                   and isinstance(job_id, str) and 0 < len(job_id) <= MAX_ID_CHARS and isinstance(key, str))
    if not well_formed:
        raise _foreign_cursor()
    if key != _filter_key(shown):
        raise bad("cursor was made for other filters: repeat the status and created_* of the first page",
                  "invalid_cursor")
    return float(created), job_id


def next_link(page: Page, args: MultiDict, cursor: str) -> str:
    """The RFC 8288 Link header value of the next page: this request's filters and limit, the new cursor."""
    kept = [(name, value) for name in ("status", "created_after", "created_before") for value in args.getlist(name)]
    query = urlencode([*kept, ("limit", str(page.limit)), ("cursor", cursor)])
    return f'</jobs?{query}>; rel="next"'
