"""Pure logic of the gateway: byte ranges and file names."""
from __future__ import annotations

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
