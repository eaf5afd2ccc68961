"""`vid2mp3 convert --source-url URL` and the SDK's import_url against the stack, the video served by a
local HTTP server (127.0.0.1, allowed for imports in the test stack)."""
from __future__ import annotations

from pathlib import Path

import pytest
from vid2mp3 import Client

from devkit.media import codec_of, duration_of
from devkit.source_server import file_route, source_server, status_route


@pytest.fixture()
def served(videos):
    with source_server() as server:
        server.routes["/talks/keynote.mp4"] = file_route(videos[0].read_bytes())
        server.routes["/page"] = status_route(200, b"<html><body>video here</body></html>", "text/html")
        yield server


def test_convert_source_url_downloads_the_result(cli, served, videos, tmp_path):
    out = tmp_path / "out"
    results = cli.json("convert", "--source-url", served.url("/talks/keynote.mp4"), "--format", "opus", "--out", out)
    assert len(results) == 1 and results[0]["status"] == "done", results
    saved = Path(results[0]["output"])
    assert saved == out / "keynote.opus" and codec_of(saved) == "opus"
    assert abs(duration_of(saved) - duration_of(videos[0])) < 0.3
    assert served.hits("/talks/keynote.mp4") == 1


def test_convert_source_url_reports_a_failed_import(cli, served, tmp_path):
    results = cli.json("convert", "--source-url", served.url("/page"), "--out", tmp_path, expect=1)
    assert results[0]["status"] == "failed" and "not a video" in results[0]["reason"]


def test_convert_needs_files_or_a_url(cli):
    assert cli.run("convert").returncode == 2


def test_sdk_import_url(stack, user, served):
    client = Client(stack["gateway"], token=user.token)
    job = client.import_url(served.url("/talks/keynote.mp4"), {"format": "mp3", "bitrate": "96k"})
    assert job.status == "fetching"
    assert client.wait(job.id, timeout=60).done
