"""Pure logic of the gateway: byte ranges, file names, kept views and shared reads of revisions."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.common.http_range import RangeNotSatisfiable, byte_range as parse_range
from services.gateway.uploads.intake import safe_filename


@pytest.mark.parametrize("header,expected", [
    (None, None), ("", None), ("bytes=0-9", (0, 9)), ("bytes=10-", (10, 99)), ("bytes=-5", (95, 99)),
    ("bytes=90-200", (90, 99)), ("items=0-5", None), ("bytes=0-1,5-6", None), ("bytes=5", None),
])
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=50-10", "bytes=-0", "bytes=abc-def"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable) as err:
        parse_range(header, 100)
    assert err.value.content_range == "bytes */100"


@pytest.mark.parametrize("raw,expected", [
    ("video.mp4", "video.mp4"), ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\clip.mov", "clip.mov"),
    ("bad\x00name\n.mp4", "badname.mp4"), ("", "video"), (None, "video"), ("..", "video"),
    ("Café \"quoted\" ✓.mkv", "Café \"quoted\" ✓.mkv"), ("x" * 500, "x" * 200),
])
def test_safe_filename(raw, expected):
    assert safe_filename(raw) == expected


def test_tus_metadata_parsing():
    from services.common.web import ApiError
    from services.gateway.uploads.tus import parse_metadata

    assert parse_metadata(None) == {} and parse_metadata("") == {}
    assert parse_metadata("filename dmlkw6lvLm1wNA==,is_confidential") == {"filename": "vidéo.mp4",
                                                                           "is_confidential": ""}
    for bad in ("filename x!", "a YQ==,a YQ==", "a b c", ",", "ké YQ==", "f " + "A" * 9000, "f /w=="):
        with pytest.raises(ApiError) as raised:
            parse_metadata(bad)
        assert raised.value.status == 400, bad


def test_kept_view_bodies_are_bounded_and_know_a_job_that_stands_still():
    from services.gateway.conditional import ViewBodies

    views = ViewBodies(max_bytes=10, max_jobs=2)
    views.put("a", b"12345")
    views.put("b", b"12345")
    assert views.get("a") == b"12345"  # now the most recently used
    views.put("c", b"1")  # 11 bytes: the least recently used goes
    assert (views.get("a"), views.get("b"), views.get("c")) == (b"12345", None, b"1")
    views.put("big", b"x" * 11)  # larger than all: not kept, and nothing dropped for it
    assert (views.get("big"), views.get("a"), views.get("c")) == (None, b"12345", b"1")
    assert not views.steady("j")  # never answered
    views.answered("j", 3)
    assert not views.steady("j")  # once: nothing to compare with
    views.answered("j", 3)
    assert views.steady("j")
    views.answered("j", 4)  # changed: read whole next time
    assert not views.steady("j")
    views.answered("j", 4)
    views.answered("k", 1)
    views.answered("k", 1)
    assert views.steady("j") and views.steady("k")
    views.answered("m", 1)  # a third job: the one answered longest ago is forgotten
    assert not views.steady("j") and views.steady("k")


class _HeldReads:
    """A read_many that records each read's matches and holds the first read until `release` is set."""

    def __init__(self, fail: bool = False):
        self.reads: list[list[dict]] = []
        self.release, self.started, self.fail = threading.Event(), threading.Event(), fail

    def __call__(self, matches: list[dict]) -> list[int | None]:
        self.reads.append(matches)
        if len(self.reads) == 1:
            self.started.set()
            assert self.release.wait(10)
        if self.fail:
            raise OSError("database unreachable")
        return [None if match.get("owner") == "intruder" else int(match["_id"]) for match in matches]


def _waiting(reads, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(reads._waiting) < count:
        assert time.monotonic() < deadline, "the polls never queued"
        time.sleep(0.001)


def _poll_all(reads, matches: list[dict], held: _HeldReads) -> list:
    """Polls `matches` at once while the first one's read is held, then lets it go."""
    with ThreadPoolExecutor(len(matches)) as pool:
        first = pool.submit(reads.revision, matches[0])
        assert held.started.wait(10)
        rest = [pool.submit(reads.revision, match) for match in matches[1:]]
        _waiting(reads, len(rest))
        held.release.set()
        futures = [first, *rest]
        return [f.exception(10) or f.result() for f in futures]


def test_polls_that_wait_together_share_the_next_read_and_each_keeps_its_own_answer():
    from services.gateway.revisions import SharedReads

    held = _HeldReads()
    reads = SharedReads(held)
    matches = [{"_id": "1"}, {"_id": "2", "owner": "a"}, {"_id": "2", "owner": "intruder"}, {"_id": "3"}]
    assert _poll_all(reads, matches, held) == [1, 2, None, 3]
    # the first read was sent before the others asked: they went together into the next one
    assert [len(read) for read in held.reads] == [1, 3]
    assert sorted(held.reads[1], key=str) == sorted(matches[1:], key=str)
    assert reads.revision({"_id": "7"}) == 7 and not reads._reading  # the turn was given back


def test_a_failed_read_fails_each_of_its_polls_and_the_next_polls_still_read():
    from services.gateway.revisions import SharedReads

    held = _HeldReads(fail=True)
    reads = SharedReads(held)
    errors = _poll_all(reads, [{"_id": "1"}, {"_id": "2"}, {"_id": "3"}], held)
    assert [type(error) for error in errors] == [OSError] * 3
    held.fail = False
    assert reads.revision({"_id": "4"}) == 4
