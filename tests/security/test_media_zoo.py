"""Hostile and unusual media through the whole pipeline: every upload ends done or failed-with-reason
within its timeout, and the converter neither crashes nor hangs."""
from __future__ import annotations

import struct
import subprocess
import time

import requests

from tests.conftest import PORTS
from devkit.client import Client
from devkit.media import make_media

DONE, FAILED = "done", "failed"
# Not today's default MP3: a format written through a file, two passes of loudness, a cover where
# there is a video, and tags, so that every hostile file meets the longest command.
ZOO_OPTIONS = {"format": "m4a", "bitrate": "128k", "normalize": "true", "cover": "true", "artist": "zoo"}


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def _build(folder):
    """name -> (file, expected outcome, upload name)."""
    zoo = {}
    base = make_media(folder / "base.mp4", seconds=2)
    zoo["mp4 (index at the end)"] = (base, DONE)
    _ffmpeg("-i", base, "-c", "copy", "-movflags", "+faststart", folder / "fast.mp4")
    zoo["mp4 faststart"] = (folder / "fast.mp4", DONE)
    zoo["mkv"] = (make_media(folder / "v.mkv", seconds=2), DONE)
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1", "-f", "lavfi", "-i",
            "sine=duration=1", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus",
            folder / "v.webm")
    zoo["webm"] = (folder / "v.webm", DONE)
    zoo["mov"] = (make_media(folder / "v.mov", seconds=2), DONE)
    _ffmpeg("-i", base, "-c:v", "copy", "-c:a", "copy", "-f", "mpegts", folder / "v.ts")
    zoo["mpeg-ts"] = (folder / "v.ts", DONE)
    zoo["audio-only mp3"] = (make_media(folder / "a.mp3", seconds=2, video=None), DONE)
    zoo["audio-only wav"] = (make_media(folder / "a.wav", seconds=2, video=None), DONE)
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", folder / "a.m4a")
    zoo["audio-only m4a"] = (folder / "a.m4a", DONE)
    zoo["video without audio"] = (make_media(folder / "silent.mp4", seconds=2, audio=None), FAILED)
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2", "-f", "lavfi", "-i",
            "sine=frequency=300:duration=2", "-f", "lavfi", "-i", "sine=frequency=900:duration=2",
            "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
            folder / "multi.mkv")
    zoo["several audio tracks"] = (folder / "multi.mkv", DONE)
    zoo["very short (0.3 s)"] = (make_media(folder / "short.mp4", seconds=0.3), DONE)
    (folder / "text.mp4").write_text("this is not a video\n" * 50)
    zoo["text renamed .mp4"] = (folder / "text.mp4", FAILED)
    data = base.read_bytes()
    (folder / "trunc.mp4").write_bytes(data[: len(data) // 3])
    zoo["truncated mp4"] = (folder / "trunc.mp4", FAILED)
    # A few KB declaring ~149 hours of audio: the duration limit refuses it before any decoding.
    header = (b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
              + b"data" + struct.pack("<I", 0xFFFFFFD0))
    (folder / "bomb.wav").write_bytes(header + b"\x80" * 4000)
    zoo["bomb: tiny file, absurd declared duration"] = (folder / "bomb.wav", "either")
    # A playlist that points at a file on the converter's own disk must not be followed.
    secret = make_media(folder / "secret.mp3", seconds=1, video=None)
    (folder / "playlist.mp4").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\nfile://{secret}\n#EXT-X-ENDLIST\n")
    zoo["HLS playlist naming a local file"] = (folder / "playlist.mp4", FAILED)
    return zoo


def _converter_pid():
    from tests.conftest import TEST_HOME

    return int((TEST_HOME / "run" / "converter.pid").read_text())


def test_media_zoo(stack, tmp_path):
    user = Client(stack["gateway"]).signed_up()
    zoo = _build(tmp_path)
    pid = _converter_pid()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    response = user.upload(empty)
    assert response.status_code == 400 and response.json()["error"]["code"] == "empty_file"

    weird_name = "é ü 日本 \"quoted\" 'single' ..\\..\\evil/../../name.mp4"
    jobs = {}
    for label, (path, expected) in zoo.items():
        response = user.upload(path, options=ZOO_OPTIONS)
        assert response.status_code == 202, (label, response.text)
        jobs[label] = (response.json()["job_id"], expected)
    response = user.upload(zoo["mp4 (index at the end)"][0], name=weird_name, options=ZOO_OPTIONS)
    assert response.status_code == 202
    jobs["unicode/quotes/separators in the name"] = (response.json()["job_id"], DONE)

    results, deadline = {}, time.monotonic() + 150
    for label, (job_id, _expected) in jobs.items():
        body = user.wait_job(job_id, timeout=max(deadline - time.monotonic(), 5))
        results[label] = (body["status"], body.get("reason"))
    print("\nmedia zoo outcomes:")
    for label, (status, reason) in results.items():
        print(f"  {label:45} {status:7} {reason or ''}")
    for label, (_job_id, expected) in jobs.items():
        status, reason = results[label]
        if status == FAILED:
            assert reason and "Traceback" not in reason, label
            assert "/tmp" not in reason and "vid2mp3-" not in reason, f"{label}: server paths in the reason: {reason}"
        if expected != "either":
            assert status == expected, (label, status, reason)
    # The bomb never turns into hours of output.
    bomb = user.job(jobs["bomb: tiny file, absurd declared duration"][0]).json()
    assert bomb["status"] == FAILED or (bomb.get("audio_seconds") or 0) < 5, bomb
    named = user.job(jobs["unicode/quotes/separators in the name"][0]).json()
    assert "/" not in named["filename"] and "\\" not in named["filename"]
    download = user.download(named["mp3_id"])
    assert download.status_code == 200 and download.content[4:8] == b"ftyp"  # an MP4 (m4a) file
    assert download.headers["Content-Type"] == "audio/mp4" and named["options"]["format"] == "m4a"
    disposition = download.headers["Content-Disposition"]
    assert "/" not in disposition.split("filename=")[1].split(";")[0] and "\n" not in disposition
    assert _converter_pid() == pid, "the converter restarted"
    assert requests.get(f"http://127.0.0.1:{PORTS['CONVERTER_METRICS_PORT']}/healthz", timeout=5).status_code == 200
