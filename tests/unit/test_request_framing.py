"""Where a request ends in a buffer: what the HTTP worker's event loop relies on before a thread sees it."""
from __future__ import annotations

import pytest

from services.common.request_framing import Malformed, body_end, parse_head

JSON_HEAD = b"POST /register?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n"
CHUNKED_HEAD = b"POST /register HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_head_is_incomplete_until_its_empty_line():
    for cut in range(len(JSON_HEAD) - 1):
        assert parse_head(JSON_HEAD[:cut]) is None


def test_the_head_names_method_path_length_and_where_the_body_starts():
    head = parse_head(JSON_HEAD + b"{}")
    assert (head.method, head.path, head.length, head.chunked, head.end) == ("POST", "/register", 5, False,
                                                                              len(JSON_HEAD))
    assert head.has_body and not head.expects_continue


def test_empty_lines_before_a_request_are_skipped():
    head = parse_head(b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head.method == "GET" and not head.has_body


def test_a_body_of_known_length_ends_after_its_bytes():
    head = parse_head(JSON_HEAD)
    assert body_end(JSON_HEAD + b"{1:", head) is None
    assert body_end(JSON_HEAD + b'{"a"}' + b"GET /next", head) == len(JSON_HEAD) + 5  # pipelined bytes stay


@pytest.mark.parametrize("body, complete", [
    (b"5\r\nhello\r\n", False),
    (b"5\r\nhello\r\n0\r\n", False),
    (b"5\r\nhello\r\n0\r\n\r\n", True),
    (b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n", True),
    (b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n", False),
    (b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", True),
])
def test_a_chunked_body_ends_after_its_last_chunk_and_trailers(body, complete):
    head = parse_head(CHUNKED_HEAD)
    assert head.chunked and head.length is None
    assert (body_end(CHUNKED_HEAD + body, head) == len(CHUNKED_HEAD) + len(body)) is complete


def test_expect_continue_is_seen_case_insensitively():
    assert parse_head(b"POST / HTTP/1.1\r\nexpect: 100-Continue\r\ncontent-length: 3\r\n\r\n").expects_continue


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
])
def test_what_cannot_be_framed_is_left_to_gunicorn(raw):
    with pytest.raises(Malformed):
        parse_head(raw)


def test_a_bad_chunk_size_is_malformed():
    head = parse_head(CHUNKED_HEAD)
    with pytest.raises(Malformed):
        body_end(CHUNKED_HEAD + b"zz\r\n", head)
