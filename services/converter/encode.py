"""The third step of a conversion: run ffmpeg as the plan says, its output streamed into a sink
(the result's GridFS file), bounded in time and size, stopped on demand, its progress followed."""
from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import re
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Callable

from services.common import config
from services.common.messaging import PermanentError
from services.common.options import DEFAULT_SILENCE_DB, Options
from services.common.storage import files

from . import command, output_size, plan, silence
from .faults import system_fault, text
from .probe import MediaInfo

log = logging.getLogger(__name__)
READ_BLOCK = 1024 * 1024
DRAIN_BLOCK = files.CHUNK_SIZE  # what _drain reads of ffmpeg's output at a time


class Stopped(Exception):
    """ffmpeg was stopped on purpose (the job was cancelled or taken away)."""


class OutputTooLarge(PermanentError):
    """The output grew past the job's limit: ffmpeg was stopped, nothing past the limit was kept."""

    def __init__(self, limit: int):
        super().__init__(f"the result grew past {output_size.megabytes(limit)}")
        self.limit = limit


def convert(source: str, info: MediaInfo, sink: BinaryIO, stderr_path: str,
            on_progress: Callable[[float], None] | None = None, stop: threading.Event | None = None,
            options: Options | None = None, title: str | None = None, max_bytes: int | None = None,
            expected: plan.Expected | None = None, on_length: Callable[[float], None] | None = None) -> int:
    """Convert `source` as `options` say (default: MP3 at MP3_BITRATE) into `sink`; returns the bytes written.

    Streamed formats go through a pipe while ffmpeg encodes (memory stays flat); formats whose
    header is written last (m4a, flac, wav, VBR mp3, mp3 with its cover: the muxer holds the audio
    back until the picture is there, which a pipe cannot take) go to a file beside `stderr_path` first.
    `on_progress(seconds)` hears how much of the output is encoded (both passes of a loudness
    normalisation count half); setting `stop` kills ffmpeg and raises Stopped. An output growing past
    `max_bytes` stops ffmpeg and raises OutputTooLarge, with nothing past the limit written to `sink`.
    `on_length(seconds)` hears the output's length when trim_silence made it shorter than `expected`'s.
    `expected`: plan.expect's answer when the caller has it already (the converter, which reserved the
    result's room with it); else the options are checked against `info` here.
    """
    options = options or Options()
    if expected is None:
        expected = plan.expect(info, options)
    stop = stop or threading.Event()
    report = on_progress or (lambda seconds: None)
    run = plan.Plan(source, "pipe:1", options, info, title, max_bytes=max_bytes)
    if options.normalize or options.trim_silence:  # a first pass measures what the second one needs
        _first_pass(run, stderr_path, lambda s: report(s / 2), stop)
        scale = expected.seconds / kept if (kept := kept_seconds(run.audible, expected.seconds)) else 1.0
        on_progress = lambda s: report(expected.seconds / 2 + s * scale / 2)  # noqa: E731
        if on_length is not None:
            on_length(kept)
    if options.spec.seekable or options.quality is not None or options.cover:
        run.target = os.path.join(os.path.dirname(stderr_path) or ".", "output." + options.spec.extension)
    take_cover(run, [options], stderr_path, stop)
    written = _run(command.build(run), stderr_path, source, sink if run.target == "pipe:1" else None,
                   on_progress, stop, max_bytes)
    if run.target != "pipe:1":
        if max_bytes is not None and os.path.getsize(run.target) > max_bytes:
            raise OutputTooLarge(max_bytes)  # before a byte of it is stored
        with open(run.target, "rb") as output:
            written = _drain(output, sink)
        os.unlink(run.target)
    if written == 0:
        raise PermanentError("no audio could be decoded from the file")
    return written


@dataclass
class RunDone:
    """What one ffmpeg run of several targets made."""

    sizes: list[int]  # bytes of each target, in order
    loudness: dict | None = None  # normalisation's pass-1 measurement of the source (_measured_loudness)
    seconds: float | None = None  # the run's length, shorter than planned when trim_silence cut silence


def convert_targets(source: str, info: MediaInfo, targets: list[plan.Target], work_dir: str, seconds: float,
                    on_progress: Callable[[float], None] | None = None, stop: threading.Event | None = None,
                    sink: BinaryIO | None = None) -> RunDone:
    """One ffmpeg run: the audio decoded once (targets share plan.shared_key) and encoded into every
    target, each to its `path` in `work_dir`; with `sink`, the one target whose path is "pipe:1" streams
    into it while ffmpeg encodes, and a copy goes to `tee_path(work_dir, target)` (what analysis reads).
    `seconds`: the run's length (progress); a normalisation's two passes count half each. Each target
    stops at its `max_bytes` (OutputTooLarge)."""
    stop = stop or threading.Event()
    report = on_progress or (lambda seconds: None)
    options = targets[0].options
    stderr_path = os.path.join(work_dir, "ffmpeg.log")
    run = plan.Plan(source, "pipe:1", options, info, targets=targets)
    kept = seconds
    if options.normalize or options.trim_silence:  # a first pass measures what the second one needs
        _first_pass(run, stderr_path, lambda s: report(s / 2), stop)
        kept = kept_seconds(run.audible, seconds)
        scale = seconds / kept if kept else 1.0
        on_progress = lambda s: report(seconds / 2 + s * scale / 2)  # noqa: E731
        if options.normalize and not run.options.normalize:  # silence: nothing to normalize, left as it is
            for target in targets:
                target.options = dataclasses.replace(target.options, normalize=False)
    if targets[0].chapters:  # the same for every target of a run: they share start and end
        run.chapters_file = os.path.join(work_dir, f"chapters-{targets[0].output}.txt")
        with open(run.chapters_file, "w", encoding="utf-8") as chapters:
            chapters.write(command.ffmetadata(targets[0].chapters))
    take_cover(run, [target.options for target in targets], stderr_path, stop)
    streamed = next((t for t in targets if t.path == "pipe:1"), None)
    limit = streamed.max_bytes if streamed else None
    teed = streamed is not None and streamed.meter is None  # a stream copy: analysed from its file afterwards
    meters = [target.meter for target in targets if target.meter is not None]
    try:
        for meter in meters:
            meter.open()
        with open(tee_path(work_dir, streamed), "wb") if teed else _nothing() as copy:
            written = _run(command.build(run), stderr_path, source, (_Tee(sink, copy) if teed else sink)
                           if streamed else None, on_progress, stop, limit,
                           [fd for meter in meters for fd in meter.child_fds])
    finally:
        for meter in meters:
            meter.close_child_ends()
    sizes = []
    for target in targets:
        size = written if target is streamed else os.path.getsize(target.path)
        if target.max_bytes is not None and size > target.max_bytes:
            raise OutputTooLarge(target.max_bytes)  # before a byte of it is stored
        if size == 0:
            raise PermanentError("no audio could be decoded from the file")
        sizes.append(size)
    return RunDone(sizes, run.loudness, kept)


def tee_path(work_dir: str, target: plan.Target) -> str:
    """Where a streamed result's copy is kept while the job runs (for analysis), with its format's extension."""
    return os.path.join(work_dir, f"streamed-result.{target.options.spec.extension}")


class _Tee:
    """A sink that writes into two: storage, and the work folder's copy."""

    def __init__(self, sink: BinaryIO, copy: BinaryIO):
        self.sink, self.copy = sink, copy

    def write(self, data: bytes) -> None:
        self.sink.write(data)
        self.copy.write(data)


@contextmanager
def _nothing():
    yield None


def take_cover(run: plan.Plan, outputs: list[Options], stderr_path: str, stop: threading.Event) -> None:
    """When an output asks for a cover and the source has a video: one frame of it as a JPEG beside
    `stderr_path` (run.cover_path), at command.cover_times' first time that gives one; none when no time
    does (the results are made without a cover rather than failed)."""
    if not (any(options.cover for options in outputs) and run.info is not None and run.info.video_streams):
        return
    path = os.path.join(os.path.dirname(stderr_path) or ".", "cover.jpg")
    for at in command.cover_times(run.info):
        try:
            _run(command.cover_extraction(run, at, path), stderr_path, run.source, None, None, stop)
        except PermanentError:
            continue
        if os.path.exists(path) and os.path.getsize(path) > 0:
            run.cover_path = path
            return
    log.warning("no frame of the video for the cover: the results have none")


def _first_pass(run: plan.Plan, stderr_path: str, on_progress, stop: threading.Event) -> None:
    """Decode once to measure: the loudness normalize applies, the audible part trim_silence keeps."""
    _run(command.analysis(run), stderr_path, run.source, None, on_progress, stop)
    if run.options.trim_silence:
        run.audible = silence.audible_part(stderr_path)
        if run.audible is None:
            threshold = run.options.silence_db if run.options.silence_db is not None else DEFAULT_SILENCE_DB
            raise PermanentError(f"the audio is below silence_db ({threshold:g} dBFS) throughout: trim_silence "
                                 "would leave nothing (give a lower silence_db)")
    if run.options.normalize:
        run.loudness = _measured_loudness(stderr_path)
        if run.loudness is None:  # silence (or under one 400 ms block): nothing to normalize, left as it is
            run.options = dataclasses.replace(run.options, normalize=False)
        elif command.linear_gain_db(run.loudness) is None:  # loudnorm's dynamic mode needs its own measurement
            audible, run.audible = run.audible, None  # measured as pass 1 was: before the cut
            _run(command.analysis(run), stderr_path, run.source, None, on_progress, stop)
            run.audible = audible
            run.loudness = _loudnorm_measurement(stderr_path)


def kept_seconds(audible: tuple[float, float | None] | None, planned: float) -> float:
    """The output's length once trim_silence cut the audible part out of the `planned` seconds."""
    if audible is None:
        return planned
    start, end = audible
    return max(min(planned if end is None else end, planned) - start, 0.0)


# ebur128's summary, as loudnorm names the same figures (command.normalize_filter takes them so): the first
# Threshold is the integrated loudness' gate
SUMMARY_FIGURES = {"input_i": r"I:\s+(-?[\d.]+) LUFS", "input_thresh": r"Threshold:\s+(-?[\d.]+) LUFS",
                   "input_lra": r"LRA:\s+(-?[\d.]+) LU\b", "input_tp": r"Peak:\s+(-?inf|-?[\d.]+) dBFS"}


def _loudnorm_measurement(stderr_path: str) -> dict:
    """loudnorm's own measuring pass: its JSON, the last thing ffmpeg prints (with the target_offset its
    dynamic mode needs to land on the target)."""
    printed = text(_stderr_tail(stderr_path, 8192))
    try:
        measured = json.loads(printed[printed.rindex("{"):printed.rindex("}") + 1])
        float(measured["input_i"]), float(measured["target_offset"])
    except (ValueError, KeyError):
        raise PermanentError("the loudness of the audio could not be measured") from None
    return measured


def ebur128_summary(printed: str) -> dict[str, str]:
    """The figures of ebur128's summary in `printed` (SUMMARY_FIGURES), from the last one printed (an ffmpeg
    that configured the graph twice printed an empty one first); PermanentError when there is none."""
    try:
        summary = printed[printed.rindex("Summary:"):]
        return {name: re.search(pattern, summary).group(1) for name, pattern in SUMMARY_FIGURES.items()}
    except (ValueError, AttributeError):
        raise PermanentError("the loudness of the audio could not be measured") from None


def _measured_loudness(stderr_path: str) -> dict | None:
    """Normalisation's first pass: ebur128's summary, the last thing ffmpeg prints; None when there is no
    loudness to measure (EBU R128's absolute gate, -70 LUFS: silence, or under one 400 ms block)."""
    measured = ebur128_summary(text(_stderr_tail(stderr_path, 8192)))
    return None if float(measured["input_i"]) <= -70 or "inf" in measured["input_tp"] else measured


def _run(args: list[str], stderr_path: str, source: str, sink: BinaryIO | None,
         on_progress: Callable[[float], None] | None, stop: threading.Event, max_bytes: int | None = None,
         pass_fds: list[int] | tuple = ()) -> int:
    """Run one ffmpeg command to its end (bounded by FFMPEG_TIMEOUT_SECONDS, stopped by `stop`);
    its stdout goes into `sink`, when there is one, up to `max_bytes`. Returns the bytes written there.
    `pass_fds`: the write ends of further pipes the command names (`pipe:N`), kept open for the child."""
    timeout = config.env_float("FFMPEG_TIMEOUT_SECONDS")
    progress_read, progress_write = os.pipe()
    args[1:1] = ["-progress", f"pipe:{progress_write}", "-stats_period", "0.5"]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=stderr,
                                   pass_fds=(progress_write, *pass_fds),
                                   stdout=subprocess.PIPE if sink is not None else subprocess.DEVNULL)
    os.close(progress_write)
    if sink is not None:
        _widen(process.stdout)
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


def _widen(pipe) -> None:
    """A pipe as large as one read: ffmpeg encodes the next block while the last one is being stored,
    where a 64 KiB pipe stalled it for every storage write."""
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, READ_BLOCK)
    except OSError:  # over /proc/sys/fs/pipe-max-size: the default size only costs time
        pass


def _wait_either(stop: threading.Event, finished: threading.Event) -> bool:
    """True once `stop` is set while ffmpeg runs; False once it finished on its own."""
    while not finished.is_set():
        if stop.wait(0.2):
            return not finished.is_set()
    return False


def _drain(stdout, sink: BinaryIO, max_bytes: int | None = None) -> int:
    """Copy `stdout` into `sink`; OutputTooLarge (ffmpeg killed by the caller) before passing `max_bytes`."""
    written = 0
    # Whole chunks: storage takes whole chunks anyway, and a read of what is there (ffmpeg writes an MP3
    # frame, ~600 bytes, at a time) cost one pass of this loop and of the writer per frame.
    while block := stdout.read(DRAIN_BLOCK):
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


def _last_line(printed: bytes | str, limit: int = 300) -> str:
    lines = [line for line in text(printed).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[-limit:]


def _raise_for_exit(code: int, stderr_path: str, source: str) -> None:
    stderr_tail = _stderr_tail(stderr_path)
    detail = _last_line(stderr_tail).replace(source, "the upload")
    raise system_fault("ffmpeg", code, stderr_tail) or PermanentError(
        f"the media could not be decoded ({detail or f'ffmpeg exit {code}'})")
