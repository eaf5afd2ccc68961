"""The pure pieces of a URL import: which answers are videos, which statuses are retried, what logs show of
a URL, the file name a URL gives, and the import's own allowed networks in the SSRF guard."""
from __future__ import annotations

import ipaddress

import pytest

from services.common import callbacks
from services.common.callbacks import IMPORT, WEBHOOK, CallbackRefused
from services.converter.fetch import refusal, shown_url, status_verdict, too_large

MP4 = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41"
MKV = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"


@pytest.mark.parametrize("content_type,head", [
    ("video/mp4", MP4), ("application/octet-stream", MP4), (None, MKV), ("video/webm", MKV),
    ("binary/octet-stream", b"RIFF\x24\0\0\0AVI LIST"), ("application/octet-stream", bytes(range(256))),
])
def test_media_answers_pass(content_type, head):
    assert refusal(content_type, head) is None


@pytest.mark.parametrize("content_type,head,said", [
    ("text/html; charset=utf-8", MP4, "web page (text/html)"),
    ("application/xhtml+xml", b"<?xml", "web page"),
    ("video/mp4", b"  <!DOCTYPE html><html>", "first bytes are HTML"),
    ("application/octet-stream", b"<html><head>", "first bytes are HTML"),
    ("application/json", b'{"error": "login"}', "application/json"),
    (None, b"Access denied. Please log in to watch this video.\n", "answered text"),
])
def test_pages_and_text_are_not_videos(content_type, head, said):
    reason = refusal(content_type, head)
    assert reason is not None and reason.startswith("not a video") and said in reason


@pytest.mark.parametrize("code,verdict", [
    (200, None), (203, None), (204, "fail"), (400, "fail"), (401, "fail"), (403, "fail"), (404, "fail"),
    (410, "fail"), (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
])
def test_status_verdicts(code, verdict):
    assert status_verdict(code) == verdict


def test_shown_url_drops_query_fragment_and_credentials():
    assert shown_url("https://u:p@cdn.example.com:8443/v/a.mp4?sig=SECRET#t=3") == "https://cdn.example.com:8443/v/a.mp4"


def test_too_large_says_the_limit():
    assert "5 bytes, larger than the limit of 4 bytes" in too_large(5, 4)
    assert "larger than the limit of 4 bytes" in too_large(-1, 4)


def test_filename_of_the_url_path():
    from services.gateway.uploads.imports import filename_of

    assert filename_of("https://example.com/talks/My%20Talk.mp4?x=1") == "My Talk.mp4"
    assert filename_of("https://example.com/") == "video"
    assert filename_of("https://example.com/a/..%2F..%2Fetc%2Fpasswd") == "passwd"


def test_imports_have_their_own_allowed_networks(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("IMPORT_ALLOWED_NETWORKS", "")
    loopback = ipaddress.ip_address("127.0.0.1")
    callbacks.check_address(loopback, WEBHOOK)
    with pytest.raises(CallbackRefused, match="source_url points at a non-public address"):
        callbacks.check_address(loopback, IMPORT)
    monkeypatch.setenv("IMPORT_ALLOWED_NETWORKS", "127.0.0.1/32")
    callbacks.check_address(loopback, IMPORT)
    with pytest.raises(CallbackRefused):
        callbacks.check_address(ipaddress.ip_address("127.0.0.2"), IMPORT)
    with pytest.raises(CallbackRefused):
        callbacks.check_address(ipaddress.ip_address("169.254.169.254"), IMPORT)


@pytest.mark.parametrize("url,said", [
    ("ftp://example.com/v.mp4", "source_url must be an http or https URL"),
    ("https://user:pw@example.com/v.mp4", "source_url must not carry credentials"),
    ("http://0x7f000001/v.mp4", "source_url host is a number"),
    ("http://[::ffff:10.0.0.1]/v.mp4", "non-public address (10.0.0.1)"),
])
def test_import_urls_refused_before_resolving(url, said, monkeypatch):
    monkeypatch.setenv("IMPORT_ALLOWED_NETWORKS", "")
    with pytest.raises(CallbackRefused) as refused:
        callbacks.callback_url(url, IMPORT)
    assert said in str(refused.value)
