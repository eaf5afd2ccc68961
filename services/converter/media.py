"""ffprobe and ffmpeg (through ffmpeg-python): inspect a file and extract its audio as MP3."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import BinaryIO, Callable

import ffmpeg

from services.common import config
from services.common.messaging import PermanentError, TransientError

from . import metrics

log = logging.getLogger(__name__)
READ_BLOCK = 1024 * 1024

# What ffprobe/ffmpeg print when the machine, not the media, failed them (I/O on the loopback
# source, memory, descriptors): such an exit is retried, never a verdict on the upload.
SYSTEM_FAULT_MARKERS = ("Connection refused", "Connection reset", "Connection timed out", "Broken pipe",
                        "Input/output error", "Cannot allocate memory", "Too many open files",
                        "No space left on device", "Resource temporarily unavailable", "Server returned 5")


@dataclass
class MediaInfo:
    duration: float | None
    audio_codec: str | None
    audio_streams: int
    video_streams: int
    audio_duration: float | None = None

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio the MP3 will hold (the first audio stream, cut at MAX_MEDIA_SECONDS)."""
        seconds = self.audio_duration if self.audio_duration is not None else (self.duration or 0.0)
        return min(seconds, config.env_float("MAX_MEDIA_SECONDS"))


# Only container formats that hold their media themselves: playlists and manifests (hls, dash,
# concat...) would make ffmpeg open other files or URLs named inside the upload.
FORMAT_WHITELIST = ("mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mpegts,mpeg,avi,flv,asf,ogg,wav,w64,mp3,aac,"
                    "flac,aiff,amr,ac3,eac3,dts,caf,mxf")


def input_options(source: str) -> dict[str, str]:
    """ffmpeg/ffprobe input options: read `source` through its own protocol only (the converter's
    loopback HTTP server, or a local file in tests and benchmarks), in an accepted format only."""
    protocols = "http,tcp" if source.startswith("http://") else "file"
    return {"protocol_whitelist": protocols, "format_whitelist": FORMAT_WHITELIST}


# Demuxers that read other resources named inside the upload (local files, URLs) instead of the upload itself.
INDIRECT_FORMATS = {"hls", "applehttp", "dash", "concat", "sdp", "rtsp", "rtp", "webm_dash_manifest", "imf"}


def _tail(text: bytes | str, limit: int = 300) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[-limit:]


def system_fault(tool: str, code: int, stderr: bytes | str) -> TransientError | None:
    """The transient error for a child that died of a signal (OOM killer, pod deletion) or hit a
    system fault; None when the exit is the media's doing. Counted and logged: each one is a retry."""
    if code < 0:
        try:
            cause = signal.Signals(-code).name
        except ValueError:
            cause = f"signal {-code}"
        detail = f"{tool} was killed by {cause}"
    else:
        marker = next((m for m in SYSTEM_FAULT_MARKERS if m in _text(stderr)), None)
        if marker is None:
            return None
        cause, detail = "system_error", f"{tool} failed on a system fault ({marker})"
    return _counted_fault(tool, cause, detail)


def _counted_fault(tool: str, cause: str, detail: str) -> TransientError:
    metrics.CHILD_FAILURES.labels(tool, cause).inc()
    log.warning("media tool failed on a system fault, will retry", extra={"tool": tool, "cause": cause})
    return TransientError(detail)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def probe(path: str, timeout: float = 60) -> MediaInfo:
    """What ffprobe sees in the file; PermanentError when it is not media ffmpeg can read,
    TransientError when ffprobe itself was killed, overloaded or hit a system fault."""
    options = [arg for name, value in input_options(path).items() for arg in (f"-{name}", value)]
    args = [config.env("FFPROBE_BINARY"), "-v", "error", *options, "-show_format", "-show_streams", "-of", "json", path]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        # Probing reads only the headers and takes well under a second: a timeout means an
        # overloaded machine or a stalled read, not a bad file.
        raise _counted_fault("ffprobe", "timeout", f"ffprobe did not answer within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise system_fault("ffprobe", done.returncode, done.stderr) or PermanentError(
            f"not a video or audio file ffmpeg can read ({_tail(done.stderr).replace(path, 'the upload') or 'unknown format'})")
    data = json.loads(done.stdout or b"{}")
    formats = set(str(data.get("format", {}).get("format_name", "")).split(","))
    if formats & INDIRECT_FORMATS:
        # A playlist or manifest makes ffmpeg open other files or URLs: the converter's own disk, the network.
        raise PermanentError("playlists and manifests are not accepted; upload the media file itself")
    streams = data.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    duration = _seconds(data.get("format", {}).get("duration"))
    return MediaInfo(duration, audio[0].get("codec_name") if audio else None, len(audio), len(video),
                     _seconds(audio[0].get("duration")) if audio else None)


def _seconds(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_convertible(info: MediaInfo) -> None:
    if info.audio_streams == 0:
        raise PermanentError("the file has no audio track" if info.video_streams else
                             "not a video or audio file ffmpeg can read (no streams)")
    limit = config.env_float("MAX_MEDIA_SECONDS")
    if info.duration is not None and info.duration > limit:
        raise PermanentError(f"media is {info.duration:.0f} s long; the limit is {limit:.0f} s")


def mp3_command(source: str, target: str, copy_audio: bool) -> list[str]:
    """The ffmpeg command: first audio stream only (the video is never decoded), MP3 out.

    `target` may be "pipe:1"; no Xing header then, since a pipe cannot be rewound to fill it in.
    """
    codec = {"acodec": "copy"} if copy_audio else {"acodec": "libmp3lame", "audio_bitrate": config.env("MP3_BITRATE")}
    stream = (
        ffmpeg.input(source, **input_options(source))
        .output(target, map="0:a:0", vn=None, sn=None, dn=None, format="mp3", write_xing=0,
                t=config.env("MAX_MEDIA_SECONDS"), **codec)
        .global_args("-hide_banner", "-nostdin", "-loglevel", "error")
        .overwrite_output()
    )
    return ffmpeg.compile(stream, cmd=config.env("FFMPEG_BINARY"))


class Stopped(Exception):
    """ffmpeg was stopped on purpose (the job was cancelled or taken away)."""


def to_mp3(source: str, info: MediaInfo, sink: BinaryIO, stderr_path: str,
           on_progress: Callable[[float], None] | None = None, stop: threading.Event | None = None) -> int:
    """Convert `source` and stream the MP3 into `sink` while ffmpeg encodes; returns the bytes written.

    Nothing is buffered beyond one read block, so memory stays flat whatever the length.
    `on_progress(seconds)` hears how much audio is encoded (from ffmpeg's -progress output);
    setting `stop` kills ffmpeg and raises Stopped.
    """
    timeout = config.env_float("FFMPEG_TIMEOUT_SECONDS")
    progress_read, progress_write = os.pipe()
    command = mp3_command(source, "pipe:1", copy_audio=info.audio_codec == "mp3")
    command[1:1] = ["-progress", f"pipe:{progress_write}", "-stats_period", "0.5"]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                   pass_fds=(progress_write,))
    os.close(progress_write)
    timed_out, stop = threading.Event(), stop or threading.Event()
    watchers = [threading.Timer(timeout, lambda: (timed_out.set(), process.kill())),
                threading.Thread(target=lambda: stop.wait() and process.kill(), daemon=True),
                threading.Thread(target=_follow_progress, args=(progress_read, on_progress), daemon=True)]
    for watcher in watchers:
        watcher.start()
    try:
        written = _drain(process.stdout, sink)
        code = process.wait()
    finally:
        watchers[0].cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        if not stop.is_set():
            stop.set()  # ends the stop watcher; ffmpeg is gone already
        else:
            raise Stopped("ffmpeg was stopped: the job is no longer this worker's")
    if timed_out.is_set():
        raise PermanentError(f"conversion took longer than the {timeout:.0f} s limit")
    if code != 0:
        _raise_for_exit(code, stderr_path, source)
    if written == 0:
        raise PermanentError("no audio could be decoded from the file")
    return written


def _drain(stdout, sink: BinaryIO) -> int:
    written = 0
    while block := stdout.read(READ_BLOCK):
        sink.write(block)
        written += len(block)
    return written


def _follow_progress(fd: int, on_progress: Callable[[float], None] | None) -> None:
    """Read ffmpeg's `key=value` progress blocks until it exits; report the encoded seconds."""
    with os.fdopen(fd, "r", errors="replace") as lines:
        for line in lines:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and on_progress is not None and value.isdigit():
                try:
                    on_progress(int(value) / 1e6)
                except Exception:  # progress is a nicety: it never fails a conversion
                    log.warning("progress report failed", exc_info=True)


def _raise_for_exit(code: int, stderr_path: str, source: str) -> None:
    with open(stderr_path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(f.tell() - 4096, 0))
        stderr_tail = f.read()
    detail = _tail(stderr_tail).replace(source, "the upload")
    raise system_fault("ffmpeg", code, stderr_tail) or PermanentError(
        f"the media could not be decoded ({detail or f'ffmpeg exit {code}'})")
