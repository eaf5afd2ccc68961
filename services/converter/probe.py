"""Inspect a file (PyAV, in-process) and extract its audio in the job's format with ffmpeg (commands: command.py)."""
from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import av

from services.common import config
from services.common.options import Options
from services.common.messaging import PermanentError, TransientError

from . import command, metrics, output_size

log = logging.getLogger(__name__)
READ_BLOCK = 1024 * 1024

# What ffmpeg prints when the machine, not the media, failed them (I/O on the loopback
# source, memory, descriptors): such an exit is retried, never a verdict on the upload.
SYSTEM_FAULT_MARKERS = ("Connection refused", "Connection reset", "Connection timed out", "Broken pipe",
                        "Input/output error", "Cannot allocate memory", "Too many open files",
                        "No space left on device", "Resource temporarily unavailable", "Server returned 5")
# The same faults as the probe's error numbers (PyAV raises most of them as OSError subclasses).
SYSTEM_ERRNOS = {errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.EAGAIN, errno.EPIPE,
                 errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT}
SYSTEM_ERRORS = (OSError, MemoryError, av.error.HTTPError, av.error.HTTPClientError)  # HTTP: our own loopback server


@dataclass
class AudioTrack:
    codec: str | None
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass
class MediaInfo:
    duration: float | None
    audio_codec: str | None
    audio_streams: int
    video_streams: int
    audio_duration: float | None = None
    tracks: list[AudioTrack] = field(default_factory=list)  # every audio stream, in order

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
    """ffmpeg and probe input options: read `source` through its own protocol only (the converter's
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
    """What libavformat sees in the file; PermanentError when it is not media ffmpeg can read,
    TransientError when reading it failed (the loopback source, memory) or took over `timeout`.

    In-process (PyAV) rather than an ffprobe child: a process start cost ~90 ms a job, as much as
    converting a short clip. Only the container and stream headers are read here; decoding stays
    in the ffmpeg child, which a fault can kill without taking the worker along."""
    try:
        with av.open(path, options=input_options(path), timeout=timeout) as container:
            return _media_info(container)
    except av.error.ExitError:  # the interrupt callback: `timeout` ran out mid-read
        raise _counted_fault("probe", "timeout", f"probing did not answer within {timeout:.0f} s") from None
    except av.error.FFmpegError as exc:
        if isinstance(exc, SYSTEM_ERRORS) or exc.errno in SYSTEM_ERRNOS:
            raise _counted_fault("probe", "system_error",
                                 f"probing failed on a system fault ({exc.strerror})") from None
        raise PermanentError(
            f"not a video or audio file ffmpeg can read ({exc.strerror or 'unknown format'})") from None


def _media_info(container) -> MediaInfo:
    if set(container.format.name.split(",")) & INDIRECT_FORMATS:
        # A playlist or manifest makes ffmpeg open other files or URLs: the converter's own disk, the network.
        raise PermanentError("playlists and manifests are not accepted; upload the media file itself")
    audio = list(container.streams.audio)
    video = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    duration = container.duration / av.time_base if container.duration is not None else None
    tracks = [AudioTrack(s.codec_context.codec.canonical_name, _stream_seconds(s), s.codec_context.sample_rate or None,
                         s.codec_context.layout.nb_channels or None) for s in audio]
    return MediaInfo(duration, tracks[0].codec if audio else None, len(audio), len(video),
                     tracks[0].duration if audio else None, tracks)


def _stream_seconds(stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def check_convertible(info: MediaInfo) -> None:
    if info.audio_streams == 0:
        raise PermanentError("the file has no audio track" if info.video_streams else
                             "not a video or audio file ffmpeg can read (no streams)")
    limit = config.env_float("MAX_MEDIA_SECONDS")
    if info.duration is not None and info.duration > limit:
        raise PermanentError(f"media is {info.duration:.0f} s long; the limit is {limit:.0f} s")


def mp3_command(source: str, target: str, copy_audio: bool) -> list[str]:
    """Today's default conversion (MP3 at MP3_BITRATE, or the MP3 source copied): for benchmarks."""
    info = MediaInfo(None, None, 1, 0, tracks=[AudioTrack("mp3" if copy_audio else None)])
    return command.build(command.Plan(source, target, Options(), info))


def check_options(info: MediaInfo, options: Options) -> None:
    """PermanentError for options this file cannot satisfy: a missing audio track, a trim past its end."""
    track = command.track_of(info, options)
    length = (track.duration if track else None) or info.duration
    if length is None:
        return
    if options.start is not None and options.start >= length:
        raise PermanentError(f"start ({options.start:g} s) is at or beyond the end of the media ({length:.3f} s)")
    if options.end is not None and options.end > length + 0.001:
        raise PermanentError(f"end ({options.end:g} s) is beyond the end of the media ({length:.3f} s)")


def output_seconds(info: MediaInfo, options: Options) -> float:
    """Seconds of audio the output will hold: the picked track, trimmed, cut at MAX_MEDIA_SECONDS."""
    track = command.track_of(info, options)
    length = (track.duration if track and track.duration is not None else None) or info.duration or 0.0
    end = min(options.end, length) if options.end is not None else length
    return max(min(end - (options.start or 0), config.env_float("MAX_MEDIA_SECONDS")), 0.0)


def bound_seconds(info: MediaInfo, options: Options) -> float:
    """The longest output ffmpeg can write: the kept part of the probed length; of an unknown length,
    what `-t` lets through (MAX_MEDIA_SECONDS, or end - start)."""
    track = command.track_of(info, options)
    if (track and track.duration is not None) or info.duration is not None:
        return output_seconds(info, options)
    limit = config.env_float("MAX_MEDIA_SECONDS")
    return min(limit, options.end - (options.start or 0)) if options.end is not None else limit


def output_bound(info: MediaInfo, options: Options) -> int:
    """Bytes the result of `options` can take at most, for this file (output_size.py)."""
    audio = command.output_audio(command.Plan("", "pipe:1", options, info))
    return output_size.upper_bound(options, audio, bound_seconds(info, options))


class Stopped(Exception):
    """ffmpeg was stopped on purpose (the job was cancelled or taken away)."""


class OutputTooLarge(PermanentError):
    """The output grew past the job's limit: ffmpeg was stopped, nothing past the limit was kept."""

    def __init__(self, limit: int):
        super().__init__(f"the result grew past {output_size.megabytes(limit)}")
        self.limit = limit


def to_mp3(source: str, info: MediaInfo, sink: BinaryIO, stderr_path: str,
           on_progress: Callable[[float], None] | None = None, stop: threading.Event | None = None,
           options: Options | None = None, title: str | None = None, max_bytes: int | None = None) -> int:
    """Convert `source` as `options` say (default: today's MP3) into `sink`; returns the bytes written.

    Streamed formats go through a pipe while ffmpeg encodes (memory stays flat); formats whose
    header is written last (m4a, flac, wav, VBR mp3, mp3 with its cover: the muxer holds the audio
    back until the picture is there, which a pipe cannot take) go to a file beside `stderr_path` first.
    `on_progress(seconds)` hears how much of the output is encoded (both passes of a loudness
    normalisation count half); setting `stop` kills ffmpeg and raises Stopped. An output growing past
    `max_bytes` stops ffmpeg and raises OutputTooLarge, with nothing past the limit written to `sink`.
    """
    options = options or Options()
    check_options(info, options)
    stop = stop or threading.Event()
    total = output_seconds(info, options)
    report = on_progress or (lambda seconds: None)
    plan = command.Plan(source, "pipe:1", options, info, title, max_bytes=max_bytes)
    if options.normalize:
        plan.loudness = _measure_loudness(plan, stderr_path, lambda s: report(s / 2), stop)
        on_progress = lambda s: report(total / 2 + s / 2)  # noqa: E731
        if plan.loudness is None:  # silence (or under one 400 ms block): nothing to normalize, left as it is
            plan.options = dataclasses.replace(options, normalize=False)
    if options.spec.seekable or options.quality is not None or options.cover:
        plan.target = os.path.join(os.path.dirname(stderr_path) or ".", "output." + options.spec.extension)
    written = _run(command.build(plan), stderr_path, source, sink if plan.target == "pipe:1" else None,
                   on_progress, stop, max_bytes)
    if plan.target != "pipe:1":
        if max_bytes is not None and os.path.getsize(plan.target) > max_bytes:
            raise OutputTooLarge(max_bytes)  # before a byte of it is stored
        with open(plan.target, "rb") as output:
            written = _drain(output, sink)
        os.unlink(plan.target)
    if written == 0:
        raise PermanentError("no audio could be decoded from the file")
    return written


def _measure_loudness(plan: command.Plan, stderr_path: str, on_progress, stop: threading.Event) -> dict | None:
    """Normalisation's first pass: loudnorm's JSON measurement, the last thing ffmpeg prints;
    None when there is no loudness to measure."""
    _run(command.analysis(plan), stderr_path, plan.source, None, on_progress, stop)
    text = _text(_stderr_tail(stderr_path, 8192))
    try:
        measured = json.loads(text[text.rindex("{"):text.rindex("}") + 1])
        float(measured["input_i"])
    except (ValueError, KeyError):
        raise PermanentError("the loudness of the audio could not be measured") from None
    return None if measured["input_i"] in ("-inf", "inf") or measured["input_thresh"] in ("-inf", "inf") else measured


def _run(args: list[str], stderr_path: str, source: str, sink: BinaryIO | None,
         on_progress: Callable[[float], None] | None, stop: threading.Event, max_bytes: int | None = None) -> int:
    """Run one ffmpeg command to its end (bounded by FFMPEG_TIMEOUT_SECONDS, stopped by `stop`);
    its stdout goes into `sink`, when there is one, up to `max_bytes`. Returns the bytes written there."""
    timeout = config.env_float("FFMPEG_TIMEOUT_SECONDS")
    progress_read, progress_write = os.pipe()
    args[1:1] = ["-progress", f"pipe:{progress_write}", "-stats_period", "0.5"]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=stderr, pass_fds=(progress_write,),
                                   stdout=subprocess.PIPE if sink is not None else subprocess.DEVNULL)
    os.close(progress_write)
    timed_out, finished = threading.Event(), threading.Event()
    watchers = [threading.Timer(timeout, lambda: (timed_out.set(), process.kill())),
                threading.Thread(target=lambda: _wait_either(stop, finished) and process.kill(), daemon=True),
                threading.Thread(target=_follow_progress, args=(progress_read, on_progress), daemon=True)]
    for watcher in watchers:
        watcher.start()
    try:
        written = _drain(process.stdout, sink, max_bytes) if sink is not None else 0
        code = process.wait()
    finally:
        watchers[0].cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        finished.set()  # ends the stop watcher; ffmpeg is gone already
    if stop.is_set():
        raise Stopped("ffmpeg was stopped: the job is no longer this worker's")
    if timed_out.is_set():
        raise PermanentError(f"conversion took longer than the {timeout:.0f} s limit")
    if code != 0:
        _raise_for_exit(code, stderr_path, source)
    return written


def _wait_either(stop: threading.Event, finished: threading.Event) -> bool:
    """True once `stop` is set while ffmpeg runs; False once it finished on its own."""
    while not finished.is_set():
        if stop.wait(0.2):
            return not finished.is_set()
    return False


def _drain(stdout, sink: BinaryIO, max_bytes: int | None = None) -> int:
    """Copy `stdout` into `sink`; OutputTooLarge (ffmpeg killed by the caller) before passing `max_bytes`."""
    written = 0
    while block := stdout.read(READ_BLOCK):
        if max_bytes is not None and written + len(block) > max_bytes:
            raise OutputTooLarge(max_bytes)
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


def _stderr_tail(stderr_path: str, size: int = 4096) -> bytes:
    with open(stderr_path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(f.tell() - size, 0))
        return f.read()


def _raise_for_exit(code: int, stderr_path: str, source: str) -> None:
    stderr_tail = _stderr_tail(stderr_path)
    detail = _tail(stderr_tail).replace(source, "the upload")
    raise system_fault("ffmpeg", code, stderr_tail) or PermanentError(
        f"the media could not be decoded ({detail or f'ffmpeg exit {code}'})")
