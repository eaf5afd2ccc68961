"""The probe's and ffmpeg's handling of real media files."""
from __future__ import annotations

import io
import socket
import time

import pytest

from services.common.messaging import PermanentError, TransientError
from services.converter import encode, faults, probe
from services.common.options import Options
from services.converter import command as ffmpeg_command
from services.converter.plan import Plan
from devkit.media import codec_of, duration_of, make_media


def test_video_to_mp3(tmp_path):
    source = make_media(tmp_path / "a.mkv", seconds=2)
    info = probe.probe(str(source))
    assert info.audio_streams == 1 and info.video_streams == 1 and info.audio_codec == "aac"
    target = tmp_path / "out.mp3"
    with open(target, "wb") as sink:
        written = encode.convert(str(source), info, sink, str(tmp_path / "log"))
    assert written == target.stat().st_size > 0
    assert codec_of(target) == "mp3"
    assert abs(duration_of(target) - 2) < 0.5
    assert abs(info.audio_seconds - 2) < 0.1


def mp3_command(source: str, target: str, copy_audio: bool) -> list[str]:
    """The converter's command for a job without options (MP3 at MP3_BITRATE, or an MP3 source copied)."""
    info = probe.MediaInfo(None, None, 1, 0, tracks=[probe.AudioTrack("mp3" if copy_audio else None)])
    return ffmpeg_command.build(Plan(source, target, Options(), info))


def test_command_never_decodes_video_and_copies_mp3():
    command = mp3_command("in", "pipe:1", copy_audio=False)
    assert "-vn" in command and command[command.index("-map") + 1] == "0:a:0"
    assert command[command.index("-write_xing") + 1] == "0"  # streamed to a pipe, no header to rewrite
    assert command[command.index("-acodec") + 1] == "libmp3lame"
    copy = mp3_command("in", "out.mp3", copy_audio=True)
    assert copy[copy.index("-acodec") + 1] == "copy"


def test_not_media_and_no_audio_are_permanent(tmp_path):
    text = tmp_path / "t.mp4"
    text.write_text("hello " * 100)
    with pytest.raises(PermanentError, match="not a video"):
        probe.probe(str(text))
    silent = make_media(tmp_path / "s.mp4", seconds=1, audio=None)
    with pytest.raises(PermanentError, match="no audio track"):
        probe.check_convertible(probe.probe(str(silent)))


def test_truncated_media_fails_permanently(tmp_path):
    source = make_media(tmp_path / "a.mp4", seconds=3)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    with pytest.raises(PermanentError):
        info = probe.probe(str(truncated))
        probe.check_convertible(info)
        encode.convert(str(truncated), info, io.BytesIO(), str(tmp_path / "log"))


def test_timeout_and_duration_limits(tmp_path, monkeypatch):
    source = make_media(tmp_path / "a.mp4", seconds=4)
    info = probe.probe(str(source))
    monkeypatch.setenv("MAX_MEDIA_SECONDS", "2")
    with pytest.raises(PermanentError, match="limit is 2 s"):
        probe.check_convertible(info)
    monkeypatch.setenv("MAX_MEDIA_SECONDS", "21600")
    # The real ffmpeg, reading its input at the media's own pace (-re: 4 s for this file), passes a 0.5 s limit
    # on any machine; a limit under a fast conversion's time once lost the race on a loaded one.
    paced = tmp_path / "paced-ffmpeg"
    paced.write_text(f'#!/bin/sh\nexec {ffmpeg_command.ffmpeg_executable()} -re "$@"\n')
    paced.chmod(0o755)
    monkeypatch.setenv("FFMPEG_BINARY", str(paced))
    monkeypatch.setenv("FFMPEG_TIMEOUT_SECONDS", "0.5")
    started = time.monotonic()
    with pytest.raises(PermanentError, match="longer than"):
        encode.convert(str(source), info, io.BytesIO(), str(tmp_path / "log"))
    assert time.monotonic() - started < 3.5  # stopped at the limit, not at the input's end


def _killer(tmp_path, tool: str, sig: str):
    """A stand-in for `tool` that is killed by `sig` while it runs, as the OOM killer would do."""
    script = tmp_path / f"dying-{tool}"
    script.write_text(f"#!/bin/sh\nkill -{sig} $$\n")
    script.chmod(0o755)
    return str(script)


def test_probe_of_a_source_that_refuses_is_transient(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on: the loopback source is gone
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/video"
    with pytest.raises(TransientError, match="system fault .Connection refused"):
        probe.probe(url)


def test_ffmpeg_killed_mid_conversion_is_transient(tmp_path, monkeypatch):
    source = make_media(tmp_path / "a.mp4", seconds=1)
    info = probe.probe(str(source))
    monkeypatch.setenv("FFMPEG_BINARY", _killer(tmp_path, "ffmpeg", "KILL"))
    with pytest.raises(TransientError, match="ffmpeg was killed by SIGKILL"):
        encode.convert(str(source), info, io.BytesIO(), str(tmp_path / "log"))


def test_probe_timeout_is_transient():
    """A source that accepts the connection and never answers: the probe gives up, the job is retried."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        with pytest.raises(TransientError, match="did not answer within 1 s"):
            probe.probe(f"http://127.0.0.1:{silent.getsockname()[1]}/video", timeout=1)
    assert time.monotonic() - started < 5


def test_system_fault_output_is_transient_and_media_errors_are_not():
    assert isinstance(faults.system_fault("ffmpeg", 1, b"av_interleaved_write_frame(): Cannot allocate memory\n"),
                      TransientError)
    assert isinstance(faults.system_fault("ffmpeg", -9, b""), TransientError)
    assert faults.system_fault("ffmpeg", 1, b"moov atom not found\nInvalid data found when processing input\n") is None
