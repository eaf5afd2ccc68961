"""The `vid2mp3` command line driven as a user drives it: convert, scripting with --json and exit codes,
an interrupted run that resumes, a batch larger than the quota, watch, login."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import requests

from devkit.media import codec_of, duration_of, make_media
from devkit.metrics import metric_value
from devkit.net import free_port
from devkit.privstack import wait_until
from devkit.stack import start_gateway

from .conftest import Cli


def test_convert_several_videos_into_a_folder_as_mp3s(cli, videos, tmp_path):
    out = tmp_path / "out"
    results = cli.json("convert", *videos, "--out", out, "--parallel", "2")
    assert [r["file"] for r in results] == [str(v) for v in videos]
    for video, result in zip(videos, results, strict=True):
        assert result["status"] == "done" and result["exit_code"] == 0, result
        saved = Path(result["output"])
        assert saved == out / f"{video.stem}.mp3" and codec_of(saved) == "mp3"
        assert abs(duration_of(saved) - 2) < 0.2
    listed = cli.json("jobs")
    assert {job["job_id"] for job in listed} == {r["job_id"] for r in results}
    shown = cli.json("show", results[0]["job_id"])
    assert shown["status"] == "done" and shown["filename"] == videos[0].name


def test_jobs_pages_by_the_servers_cursor_and_filters(cli, videos, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(50_000))
    converted = cli.json("convert", *videos, broken, "--out", tmp_path / "out", "--parallel", "2", expect=1)
    made = {r["job_id"]: r["status"] for r in converted}
    assert sorted(made.values()) == ["done", "done", "done", "failed"]

    first = cli.run("jobs", "--limit", "2", "--json")
    assert first.returncode == 0, first.stderr
    cursor = first.stderr.split("next_cursor: ", 1)[1].strip()  # stdout stays the list
    rest = cli.json("jobs", "--limit", "2", "--cursor", cursor)
    paged = [job["job_id"] for job in json.loads(first.stdout) + rest]
    every = [job["job_id"] for job in cli.json("jobs", "--limit", "2", "--all")]
    assert len(set(every)) == len(every) == 4 and set(every) == set(made) and paged == every  # newest first

    done = cli.json("jobs", "--status", "done", "--limit", "1", "--all")
    assert sorted(job["job_id"] for job in done) == sorted(j for j, status in made.items() if status == "done")
    assert len(cli.json("jobs", "--status", "done", "--status", "failed")) == 4
    assert len(cli.json("jobs", "--since", "2000-01-01", "--before", "2999-01-01T00:00:00Z")) == 4
    assert cli.json("jobs", "--since", "2999-01-01") == [] and cli.json("jobs", "--before", "2000-01-01") == []
    assert cli.run("jobs", "--since", "last tuesday").returncode == 2  # usage
    assert cli.json("jobs", "--cursor", "forged", expect=2)["error"]["code"] == "invalid_cursor"


def test_results_land_beside_the_videos_in_the_format_asked(cli, videos, tmp_path):
    video = shutil.copy(videos[0], tmp_path / "talk.mp4")
    done = cli.run("convert", video, "--format", "opus", "--bitrate", "64k")
    assert done.returncode == 0, done.stderr
    assert codec_of(tmp_path / "talk.opus") == "opus"
    assert "talk.opus" in done.stdout


def test_exit_codes_tell_scripts_what_went_wrong(cli, videos, tmp_path):
    not_a_video = tmp_path / "broken.mp4"
    not_a_video.write_bytes(os.urandom(50_000))
    failed = cli.json("convert", not_a_video, expect=1)
    assert failed[0]["status"] == "failed" and failed[0]["reason"] and failed[0]["output"] is None

    refused = cli.json("convert", videos[0], expect=3, VID2MP3_TOKEN="not-a-token")
    assert refused[0]["error"]["code"] == "invalid_token"
    assert cli.run("jobs", VID2MP3_TOKEN="not-a-token").returncode == 3
    assert cli.json("jobs", expect=3, VID2MP3_TOKEN="")["error"]["code"] == "no_credential"

    assert cli.json("convert", videos[0], "--bitrate", "7k", expect=2)[0]["error"]["code"] == "invalid_option"
    assert cli.run("convert", tmp_path / "missing.mp4").returncode == 2  # no such file: usage
    assert cli.run("frobnicate").returncode == 2
    assert cli.json("show", "0123456789abcdef01234567", expect=5)["error"]["status"] == 404
    assert cli.run("jobs", VID2MP3_URL=f"http://127.0.0.1:{free_port()}").returncode == 4  # nobody listens


def _padded_video(source: Path, target: Path, megabytes: int) -> Path:
    """A real video followed by a top-level `free` box of `megabytes` (players and ffmpeg skip it): an
    upload long enough to interrupt, of a file that still converts."""
    padding = megabytes * 1024 * 1024
    with open(target, "wb") as f:
        f.write(source.read_bytes())
        f.write((padding + 8).to_bytes(4, "big") + b"free")
        f.write(os.urandom(padding))
    return target


def _stored_upload_url(cli: Cli) -> str | None:
    path = cli.home / "cache" / "vid2mp3" / "uploads.json"
    entries = json.loads(path.read_text()) if path.exists() else {}
    return next((entry["url"] for entry in entries.values()), None)


def _server_offset(url: str, user) -> int:
    answer = requests.head(url, headers={**user.auth, "Tus-Resumable": "1.0.0"}, timeout=10)
    return int(answer.headers["Upload-Offset"])


def test_an_interrupted_convert_resumes_its_upload_where_it_stopped(cli, user, stack, videos, tmp_path):
    video = _padded_video(videos[1], tmp_path / "long.mp4", 40)
    resumed_before = metric_value(stack["metrics"]["gateway"], "gateway_tus_uploads_total", event="resumed") or 0
    first = cli.popen("convert", video, "--chunk-size", "1")
    try:
        url = wait_until(lambda: _stored_upload_url(cli), "the upload's URL stored", 60, 0.05)
        wait_until(lambda: _server_offset(url, user) > 0, "the first bytes stored", 60, 0.05)
    finally:
        first.kill()  # as a power cut would: no clean-up
        first.wait(30)
    sent = _server_offset(url, user)
    assert 0 < sent < video.stat().st_size

    [result] = cli.json("convert", video, "--chunk-size", "1")
    assert result["status"] == "done" and result["resumed_from"] >= sent
    assert codec_of(Path(result["output"])) == "mp3"
    assert [job["job_id"] for job in cli.json("jobs")] == [result["job_id"]]  # one upload, one job
    assert metric_value(stack["metrics"]["gateway"], "gateway_tus_uploads_total", event="resumed") > resumed_before
    assert _stored_upload_url(cli) is None  # done: the next run converts afresh


@pytest.fixture(scope="module")
def small_quota_gateway(stack, tmp_path_factory):
    """A gateway of our own on the test stack where a user may have 2 unfinished jobs."""
    env = dict(os.environ, AUTH_URL=stack["auth"], USER_MAX_ACTIVE_JOBS="2")
    proc, base, metrics = start_gateway(env, [], {}, tmp_path_factory.mktemp("client-quota") / "gateway.log")
    yield base, metrics
    proc.terminate()
    proc.wait(30)


def test_a_batch_larger_than_the_active_jobs_quota_waits_and_completes(user, small_quota_gateway, tmp_path):
    gateway, metrics = small_quota_gateway
    cli = Cli(tmp_path / "home", gateway, user.token)
    videos = [make_media(tmp_path / f"part{n}.mp4", seconds=2, video="testsrc=size=160x120:rate=5",
                         audio=f"sine=frequency={200 + 50 * n}") for n in range(5)]
    results = cli.json("convert", *videos, "--parallel", "5", "--out", tmp_path / "out")
    assert [r["status"] for r in results] == ["done"] * 5, results
    assert all(codec_of(Path(r["output"])) == "mp3" for r in results)
    # 5 at once, 2 allowed: the other uploads were refused (429 quota_exceeded), waited and went on
    assert metric_value(metrics, "gateway_quota_rejections_total", limit="active_jobs") >= 3


def test_watch_converts_what_appears_and_never_its_own_results(cli, videos, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    watcher = cli.popen("watch", folder, "--interval", "0.3", "--json")
    try:
        shutil.copy(videos[0], folder / "first.mp4")
        wait_until(lambda: (folder / "first.mp3").exists(), "first.mp3", 120)
        shutil.copy(videos[1], folder / "second.mp4")  # scanned with first.mp3 in the folder
        wait_until(lambda: (folder / "second.mp3").exists(), "second.mp3", 120)
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=30)
    reported = [json.loads(line) for line in out.splitlines()]
    assert sorted(Path(r["file"]).name for r in reported) == ["first.mp4", "second.mp4"], (out, err)
    assert codec_of(folder / "second.mp3") == "mp3"
    assert sorted(job["filename"] for job in cli.json("jobs")) == ["first.mp4", "second.mp4"]


def test_login_keeps_the_credential_readable_by_the_user_only(stack, user, tmp_path):
    cli = Cli(tmp_path / "home", stack["gateway"], token=None)
    done = cli.run("login", "--email", user.email, VID2MP3_PASSWORD=user.password)
    assert done.returncode == 0, done.stderr
    stored = cli.home / "config" / "vid2mp3" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert json.loads(stored.read_text())["servers"][stack["gateway"]]["email"] == user.email
    assert cli.json("whoami")["email"] == user.email  # the stored token is used
    assert cli.run("login", "--email", user.email, VID2MP3_PASSWORD="wrong-password-1").returncode == 3
    assert cli.run("logout").returncode == 0
    assert cli.run("jobs").returncode == 3


def test_jobs_are_cancelled_downloaded_and_deleted_by_id(cli, user, videos, ten_minute_video, tmp_path):
    long_job = user.upload(ten_minute_video).json()["job_id"]
    assert cli.json("cancel", long_job)["status"] == "cancelled"
    assert cli.run("wait", long_job).returncode == 1  # not done
    short = cli.json("convert", videos[2], "--out", tmp_path)[0]
    (tmp_path / "again").mkdir()
    saved = Path(cli.json("download", short["job_id"], "--out", tmp_path / "again")["output"])
    assert saved == tmp_path / "again" / f"{videos[2].stem}.mp3" and codec_of(saved) == "mp3"
    assert cli.json("delete", long_job)["deleted"] is True
    assert cli.run("show", long_job).returncode == 5
