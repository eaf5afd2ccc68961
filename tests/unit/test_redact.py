"""The credential scrubber of spans and logs (services/common/redact.py)."""
from __future__ import annotations

import json
import logging
import sys

import pytest

from services.common import redact
from services.common.telemetry import JsonFormatter


@pytest.mark.parametrize("before,after", [
    ("/links/WyJqIl0.c2ln", "/links/[redacted]"),
    ("GET /links/WyJqIl0.c2ln", "GET /links/[redacted]"),
    ("http://h:8080/links/WyJqIl0.c2ln?x=1", "http://h:8080/links/[redacted]?x=[redacted]"),
    ("https://hooks.example.com/in?token=abc&sig=def", "https://hooks.example.com/in?token=[redacted]&sig=[redacted]"),
    ("https://user:pw@hooks.example.com/in", "https://[redacted]@hooks.example.com/in"),
    ("Authorization: Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln", "Authorization: Bearer [redacted]"),
    ("basic dXNlcjpwdw==", "basic [redacted]"),
    ("token eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln in a message", "token [redacted] in a message"),
    ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret whsec_[redacted]"),
    ("key v2m_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg used", "key v2m_[redacted] used"),
    ("json {\"key\": \"v2m_0123456789abcdef_Ab\"}", "json {\"key\": \"v2m_[redacted]\"}"),
    ("/search/q%3Dv2m_0123456789abcdef_Ab", "/search/q%3Dv2m_[redacted]"),
    ("id=x_v2m_0123456789abcdef_Ab", "id=x_v2m_[redacted]"),
])
def test_credentials_are_scrubbed(before, after):
    assert redact.text(before) == after


@pytest.mark.parametrize("kept", ["/download?fid=65f0c0ffee&limit=5&offset=10", "/uploads/5f2b1c", "/jobs/<job_id>",
                                  "GET /links/<token>", "text/html; charset=utf-8", "a=b", ""])
def test_what_is_no_credential_is_kept(kept):
    assert redact.text(kept) == kept


def test_attributes_drop_captured_credential_headers_and_scrub_urls():
    attributes = {"http.request.header.authorization": ("Bearer x",), "http.request.header.x-api-key": ("k",),
                  "http.target": "/links/abc", "url.query": "?sig=1", "http.status_code": 200,
                  "http.request.header.accept": ("*/*",)}
    assert redact.attributes(attributes) == {
        "http.request.header.authorization": "[redacted]", "http.request.header.x-api-key": "[redacted]",
        "http.target": "/links/[redacted]", "url.query": "?sig=[redacted]", "http.status_code": 200,
        "http.request.header.accept": ("*/*",)}


def test_json_log_lines_are_scrubbed_in_message_fields_and_exception():
    try:
        raise ValueError("fetching https://hooks.example.com/in?secret=s3cr3t failed")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "GET %s", ("/links/WyJqIl0.c2ln",), True)
        record.exc_info = sys.exc_info()
    record.url = "https://hooks.example.com/in?secret=s3cr3t"
    record.nested = {"urls": ["/links/WyJqIl0.c2ln"]}
    line = JsonFormatter("test").format(record)
    assert "s3cr3t" not in line and "WyJqIl0" not in line
    entry = json.loads(line)
    assert entry["message"] == "GET /links/[redacted]" and entry["nested"] == {"urls": ["/links/[redacted]"]}
