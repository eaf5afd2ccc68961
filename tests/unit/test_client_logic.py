"""The client's pure parts (clients/src/vid2mp3): the event-stream reader, error answers, where results
go, what identifies an upload to resume, and the private files it keeps."""
from __future__ import annotations

import json
import stat

import requests
from vid2mp3 import config, events
from vid2mp3.errors import AUTH, REFUSED, SERVER, USAGE
from vid2mp3.models import Job
from vid2mp3.sdk import error_of, output_path
from vid2mp3.uploads import FileFingerprint


def test_the_event_reader_keeps_ids_and_kinds_and_skips_keep_alives():
    lines = ["id: 3", 'data: {"a": 1}', "", ": keep-alive", "", "event: deleted", "data: {}", "", "data: x"]
    found = list(events.parse(lines))
    assert found == [events.Event("message", '{"a": 1}', "3"), events.Event("deleted", "{}", "3")]


def _answer(status: int, body: dict, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def test_error_answers_become_exceptions_with_exit_codes():
    problem = error_of(_answer(429, {"code": "quota_exceeded", "detail": "too many", "error": {"code": "x"}},
                               {"Retry-After": "30"}))
    assert (problem.code, problem.message, problem.retry_after, problem.exit_code) == \
        ("quota_exceeded", "too many", 30, REFUSED)
    older = error_of(_answer(400, {"error": {"code": "invalid_option", "message": "bad bitrate"}}))
    assert (older.code, older.message, older.exit_code) == ("invalid_option", "bad bitrate", USAGE)
    assert error_of(_answer(401, {})).exit_code == AUTH
    assert error_of(_answer(502, {})).exit_code == SERVER


def test_a_result_goes_beside_its_video_and_never_over_it(tmp_path):
    job = Job(id="j1", status="done", options={"format": "opus"})
    assert output_path(tmp_path / "talk.mp4", job) == tmp_path / "talk.opus"
    assert output_path(tmp_path / "talk.mp4", job, tmp_path / "out") == tmp_path / "out" / "talk.opus"
    mp3 = Job(id="j2", status="done", options={"format": "mp3"})
    (tmp_path / "song.mp3").write_bytes(b"x")
    assert output_path(tmp_path / "song.mp3", mp3) == tmp_path / "song.converted.mp3"


def test_files_that_differ_only_at_their_end_are_different_uploads(tmp_path):
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    first.write_bytes(b"\0" * 200_000 + b"one")
    second.write_bytes(b"\0" * 200_000 + b"two")
    with open(first, "rb") as a, open(second, "rb") as b:
        assert FileFingerprint("same").get_fingerprint(a) != FileFingerprint("same").get_fingerprint(b)
        assert FileFingerprint("same").get_fingerprint(a) != FileFingerprint("other options").get_fingerprint(a)


def test_the_credential_and_the_upload_urls_are_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("VID2MP3_TOKEN", raising=False)
    monkeypatch.delenv("VID2MP3_API_KEY", raising=False)
    path = config.save_credential("http://127.0.0.1:8080", api_key="v2m_secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.resolve_credential("http://127.0.0.1:8080") == "v2m_secret"
    monkeypatch.setenv("VID2MP3_API_KEY", "v2m_from_env")
    assert config.resolve_credential("http://127.0.0.1:8080") == "v2m_from_env"
    store = config.UrlStore(tmp_path / "cache" / "uploads.json")
    store.set_item("k", "http://127.0.0.1:8080/uploads/1")
    assert store.get_item("k") == "http://127.0.0.1:8080/uploads/1"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.remove_item("k")
    assert store.get_item("k") is None
