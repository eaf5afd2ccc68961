"""How the client reads an error answer, without a server: problem details or the older error object,
and Retry-After as seconds or as an HTTP date (RFC 9110 10.2.3)."""
from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from vid2mp3.errors import AuthError, error_from, retry_after_seconds
from vid2mp3.uploads import _error as tus_error


@pytest.mark.parametrize("value,expected", [("12", 12.0), (" 0 ", 0.0), (None, None), ("", None), ("soon", None),
                                            ("-5", None), ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0)])
def test_retry_after_in_seconds_or_a_past_date(value, expected):
    assert retry_after_seconds(value) == expected


def test_retry_after_as_a_future_http_date():
    assert 50 < retry_after_seconds(formatdate(time.time() + 60, usegmt=True)) <= 60


def test_problem_details_and_the_older_error_object_alike():
    problem = b'{"type":"/problems/quota_exceeded","code":"quota_exceeded","detail":"5 of 5","status":429}'
    error = error_from(429, problem, {"Retry-After": "30"})
    assert (error.code, error.message, error.retry_after, error.exit_code) == ("quota_exceeded", "5 of 5", 30.0, 5)
    older = error_from(403, b'{"error":{"code":"read_only_key","message":"read only"}}', {})
    assert (older.code, older.message, older.exit_code) == ("read_only_key", "read only", 3)
    assert error_from(502, b"<html>bad gateway</html>", {}, "Bad Gateway").code == "http_502"


def test_tus_answers_are_read_alike_with_lower_case_header_names():
    error = tus_error(401, b'{"code":"invalid_api_key","detail":"unknown"}', {"retry-after": "7"})
    assert isinstance(error, AuthError) and (error.code, error.retry_after) == ("invalid_api_key", 7.0)
