"""What a finished audio file sounds like, measured with ffmpeg: its loudness (EBU R128) and its
waveform (BBC audiowaveform's JSON peaks).

An encoded result is measured by the conversion's own ffmpeg run (`Meter`, command.meter_output): the
audio its encoder gets is split off, metered by ebur128 (its readings printed to one pipe) and written
as 8-bit mono PCM to another, whose min and max per pixel numpy takes block by block. No second decode,
no second process: that made the analysis cost +61 % of a plain job (issue 24). A stream-copied result
(no decoded audio in the run) is measured afterwards by ONE ffmpeg child of its own (`analyse`), the
same two branches read from its file, bounded like a conversion (encode._run).
"""
from __future__ import annotations

import collections
import json
import math
import os
import threading

import numpy

from services.common.jobs import LOUDNESS_FIELDS

from . import command, encode
from .faults import text
from .plan import Plan, output_rate, track_of
from .probe import input_options, probe

SILENT_LUFS = -70.0  # EBU R128's absolute gate: ebur128 says -70 when no block of audio passed it
# Waveform resolution: audiowaveform's own default of 256 samples per pixel (~170 pixels a second at
# 44.1 kHz, enough to zoom into a short clip) until the file reaches MAX_PIXELS; from there on pixels are
# merged in pairs, so a long file gets from MAX_PIXELS/2 to MAX_PIXELS pixels (a 3-hour file ~40 KB
# of JSON), without knowing its length beforehand, in memory that never grows past MAX_PIXELS.
BASE_SAMPLES_PER_PIXEL = 256
MAX_PIXELS = 4096
FALLBACK_RATE = 48000  # decoding rate for a file whose rate the probe cannot read
PIPE_BLOCK = 256 * 1024
READING_LINES = 32  # ebur128's readings of one frame are 9 lines: the last frame's are in the last 32


def attach_meters(source: str, info, targets: list) -> None:
    """A Meter for each target ffmpeg will encode (a stream copy has no decoded audio to measure)."""
    run = Plan(source, "pipe:1", info=info)
    for target in targets:
        if not command.copies(run, target):
            track = track_of(info, target.options)
            rate = output_rate(target.options, track) or (track.sample_rate if track and track.sample_rate
                                                           else FALLBACK_RATE)
            target.meter = Meter(rate)


class Meter:
    """One result's analysis made while ffmpeg encodes it: ebur128's readings (`readings_fd`) and the
    8-bit mono PCM at `rate` (`pcm_fd`), pipes whose write ends the child gets; a thread reads each."""

    def __init__(self, rate: int):
        self.rate, self.peaks = rate, Peaks()
        self.readings: collections.deque[str] = collections.deque(maxlen=READING_LINES)
        self.partial = ""  # a line cut between two blocks
        self.failure: BaseException | None = None
        self.readings_fd = self.pcm_fd = -1
        self.threads: list[threading.Thread] = []

    def open(self) -> None:
        """The pipes, and their readers: each ends at EOF, once the child and close_child_ends closed it."""
        readings_read, self.readings_fd = os.pipe()
        pcm_read, self.pcm_fd = os.pipe()
        self.threads = [threading.Thread(target=self._read, args=(readings_read, self._reading), daemon=True),
                        threading.Thread(target=self._read, args=(pcm_read, self.peaks.write), daemon=True)]
        for thread in self.threads:
            thread.start()

    @property
    def child_fds(self) -> tuple[int, int]:
        return self.readings_fd, self.pcm_fd

    def close_child_ends(self) -> None:
        for fd in self.child_fds:
            if fd >= 0:
                os.close(fd)
        self.readings_fd = self.pcm_fd = -1

    def _read(self, fd: int, take) -> None:
        # Whole blocks: ffmpeg writes a frame (~1 KB of PCM) at a time, and a read of what is there took one
        # numpy pass per frame (5,900 for a 10-minute file, a third of the converter's Python CPU).
        with open(fd, "rb") as pipe:
            while block := pipe.read(PIPE_BLOCK):
                if self.failure is None:
                    try:
                        take(block)
                    except Exception as exc:  # kept for result(); the pipe is still drained
                        self.failure = exc

    def _reading(self, block: bytes) -> None:
        lines = (self.partial + text(block)).split("\n")
        self.partial = lines.pop()
        self.readings.extend(lines)

    def result(self) -> tuple[dict, bytes]:
        """The loudness (as parse_readings) and the waveform, once ffmpeg has exited."""
        for thread in self.threads:
            thread.join()
        if self.failure is not None:
            raise self.failure
        self.peaks.finish()
        return parse_readings([*self.readings, self.partial]), waveform_json(self.peaks, self.rate)


def parse_readings(lines: list[str]) -> dict:
    """ebur128's last readings (ametadata's print of its `lavfi.r128.*` keys, one frame per 100 ms) as
    LOUDNESS_FIELDS; all None for audio too short for one reading, and where silence has none."""
    last: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key.startswith("lavfi.r128."):
            last[key[len("lavfi.r128."):]] = value
    try:
        integrated, lra = float(last["I"]), float(last["LRA"])
        peak = max(float(value) for key, value in last.items() if key.startswith("true_peaks_ch"))
    except (KeyError, ValueError):
        return dict.fromkeys(LOUDNESS_FIELDS)
    audible = integrated > SILENT_LUFS
    values = (integrated if audible else None, lra if audible else None,
              20 * math.log10(peak) if peak > 0 else None)
    return dict(zip(LOUDNESS_FIELDS, (None if value is None else round(value, 1) for value in values), strict=True))


def analyse(path: str, work_dir: str) -> tuple[dict, bytes]:
    """The loudness (jobs.LOUDNESS_FIELDS, see parse_ebur128) and the waveform (audiowaveform JSON, see
    waveform_json) of the first audio stream of `path`, from one decode of it."""
    rate = _sample_rate(path)
    stderr_path = os.path.join(work_dir, "analysis.log")
    graph = ("[0:a:0]asplit=2[meter][wave];"
             "[meter]ebur128=peak=true:framelog=verbose,anullsink")  # the summary only at info level
    args = [command.ffmpeg_executable(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", *_input(path),
            "-filter_complex", graph, "-map", "[wave]", "-ac", "1", "-ar", str(rate), "-c:a", "pcm_u8",
            "-f", "u8", "pipe:1"]
    peaks = Peaks()
    encode._run(args, stderr_path, path, peaks, None, threading.Event())
    peaks.finish()
    return parse_ebur128(text(encode._stderr_tail(stderr_path, 4096))), waveform_json(peaks, rate)


# ---------------------------------------------------------------- loudness


def parse_ebur128(printed: str) -> dict:
    """The ebur128 filter's summary (the last one printed) as LOUDNESS_FIELDS: integrated loudness
    (LUFS), loudness range (LU) and true peak (dBTP) to 0.1; None where silence has none."""
    figures = encode.ebur128_summary(printed)
    integrated, lra, peak = float(figures["input_i"]), float(figures["input_lra"]), figures["input_tp"]
    audible = integrated > SILENT_LUFS
    values = (integrated if audible else None, lra if audible else None, None if "inf" in peak else float(peak))
    return dict(zip(LOUDNESS_FIELDS, (None if value is None else round(value, 1) for value in values), strict=True))


# ---------------------------------------------------------------- waveform


class Peaks:
    """The min/max of each pixel's samples, fed unsigned 8-bit mono PCM (128 is zero) as ffmpeg writes it,
    in blocks of any size; pairs of pixels are merged whenever there are more than MAX_PIXELS. Pixel k
    always covers samples [k * samples_per_pixel, (k + 1) * samples_per_pixel): merging keeps that."""

    def __init__(self, samples_per_pixel: int = BASE_SAMPLES_PER_PIXEL, max_pixels: int = MAX_PIXELS):
        self.samples_per_pixel = samples_per_pixel
        self.merge_at = max_pixels + max_pixels % 2  # the first even count from max_pixels on: pairs merge whole
        self.mins = numpy.empty(0, dtype=numpy.int16)
        self.maxs = numpy.empty(0, dtype=numpy.int16)
        self.pending = numpy.empty(0, dtype=numpy.uint8)  # samples of the pixel being filled

    def write(self, block: bytes) -> int:
        samples = numpy.concatenate((self.pending, numpy.frombuffer(block, dtype=numpy.uint8)))
        while True:  # one pass per merge: a block may cross the limit (the pixel size doubles on the way)
            per_pixel = self.samples_per_pixel
            whole = min(len(samples) // per_pixel, self.merge_at - len(self.mins))
            pixels = samples[:whole * per_pixel].reshape(whole, per_pixel)
            self._append(pixels.min(axis=1), pixels.max(axis=1))
            samples = samples[whole * per_pixel:]
            if len(self.mins) < self.merge_at:
                break
            self._halve()
        self.pending = samples.copy()  # not a view into the whole block: memory stays one pixel's
        return len(block)

    def _append(self, mins: numpy.ndarray, maxs: numpy.ndarray) -> None:
        self.mins = numpy.concatenate((self.mins, mins.astype(numpy.int16) - 128))
        self.maxs = numpy.concatenate((self.maxs, maxs.astype(numpy.int16) - 128))

    def _halve(self) -> None:
        """Twice the samples per pixel: each pair of pixels becomes one (exact: a min of mins, a max of maxes)."""
        self.mins = self.mins.reshape(-1, 2).min(axis=1)
        self.maxs = self.maxs.reshape(-1, 2).max(axis=1)
        self.samples_per_pixel *= 2

    def finish(self) -> None:
        """The last, partial pixel (audiowaveform counts it too)."""
        if len(self.pending):
            self._append(self.pending.min(keepdims=True), self.pending.max(keepdims=True))
            self.pending = self.pending[:0]

    @property
    def data(self) -> list[int]:
        """min0, max0, min1, max1, ... (signed)."""
        return numpy.column_stack((self.mins, self.maxs)).ravel().tolist()


def waveform_json(peaks: Peaks, rate: int) -> bytes:
    data = peaks.data
    document = {"version": 2, "channels": 1, "sample_rate": rate, "samples_per_pixel": peaks.samples_per_pixel,
                "bits": 8, "length": len(data) // 2, "data": data}
    return json.dumps(document, separators=(",", ":")).encode()


def _sample_rate(path: str) -> int:
    info = probe(path)
    track = info.tracks[0] if info.tracks else None
    return track.sample_rate if track and track.sample_rate else FALLBACK_RATE


def _input(path: str) -> list[str]:
    return [arg for name, value in input_options(path).items() for arg in (f"-{name}", value)] + ["-i", path]
