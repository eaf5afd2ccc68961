"""What a finished audio file sounds like, measured with ffmpeg: its loudness (EBU R128) and its
waveform (BBC audiowaveform's JSON peaks).

Each measurement is one more ffmpeg child, bounded like a conversion (encode._run: the timeout,
stderr to a file in the work folder, a killed ffmpeg a retry rather than a verdict on the media).
"""
from __future__ import annotations

import json
import os
import re
import threading

from services.common import config
from services.common.jobs import LOUDNESS_FIELDS
from services.common.messaging import PermanentError

from . import encode
from .faults import text
from .probe import input_options, probe

SILENT_LUFS = -70.0  # EBU R128's absolute gate: ebur128 says -70 when no block of audio passed it
# Waveform resolution: audiowaveform's own default of 256 samples per pixel (~170 pixels a second at
# 44.1 kHz, enough to zoom into a short clip) until the file reaches MAX_PIXELS; from there on pixels are
# merged in pairs, so a long file gets from MAX_PIXELS/2 to MAX_PIXELS pixels (a 3-hour file ~40 KB
# of JSON), without knowing its length beforehand, in memory that never grows past MAX_PIXELS.
BASE_SAMPLES_PER_PIXEL = 256
MAX_PIXELS = 4096
FALLBACK_RATE = 48000  # decoding rate for a file whose rate the probe cannot read


# ---------------------------------------------------------------- loudness


def loudness_of(path: str, work_dir: str) -> dict:
    """Integrated loudness (LUFS), loudness range (LU) and true peak (dBTP) of the first audio stream of
    `path`, to 0.1 (keys jobs.LOUDNESS_FIELDS); None where silence has none."""
    stderr_path = os.path.join(work_dir, "loudness.log")
    args = [config.env("FFMPEG_BINARY"), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
            *_input(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
            "-af", "ebur128=peak=true:framelog=verbose",  # the summary only: no line per 100 ms at info level
            "-f", "null", "-"]
    encode._run(args, stderr_path, path, None, None, threading.Event())
    return parse_ebur128(text(encode._stderr_tail(stderr_path, 4096)))


def parse_ebur128(printed: str) -> dict:
    """The ebur128 filter's summary (the last one printed) as LOUDNESS_FIELDS."""
    try:
        summary = printed[printed.rindex("Summary:"):]
        integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
        lra = float(re.search(r"LRA:\s+(-?[\d.]+) LU\b", summary).group(1))
        peak = re.search(r"Peak:\s+(-?inf|-?[\d.]+) dBFS", summary).group(1)
    except (ValueError, AttributeError):
        raise PermanentError("the loudness of the audio could not be measured") from None
    audible = integrated > SILENT_LUFS
    values = (integrated if audible else None, lra if audible else None, None if "inf" in peak else float(peak))
    return dict(zip(LOUDNESS_FIELDS, (None if value is None else round(value, 1) for value in values), strict=True))


# ---------------------------------------------------------------- waveform


class Peaks:
    """The min/max of each pixel's samples, fed unsigned 8-bit mono PCM (128 is zero) as ffmpeg writes it;
    pairs of pixels are merged whenever there are more than MAX_PIXELS."""

    def __init__(self, samples_per_pixel: int = BASE_SAMPLES_PER_PIXEL, max_pixels: int = MAX_PIXELS):
        self.samples_per_pixel, self.max_pixels = samples_per_pixel, max_pixels
        self.data: list[int] = []  # min0, max0, min1, max1, ... (signed)
        self.pending = b""  # samples of the pixel being filled

    def write(self, block: bytes) -> int:
        samples, at = self.pending + block, 0
        while len(samples) - at >= self.samples_per_pixel:  # the size may double on the way
            end = at + self.samples_per_pixel
            self._add(samples[at:end])
            at = end
        self.pending = samples[at:]
        return len(block)

    def _add(self, samples: bytes) -> None:
        self.data += (min(samples) - 128, max(samples) - 128)
        if len(self.data) >= 2 * self.max_pixels and len(self.data) % 4 == 0:
            self._halve()

    def _halve(self) -> None:
        """Twice the samples per pixel: each pair of pixels becomes one (exact: a min of mins, a max of maxes)."""
        data = self.data
        self.data = [value for at in range(0, len(data), 4)
                     for value in (min(data[at], data[at + 2]), max(data[at + 1], data[at + 3]))]
        self.samples_per_pixel *= 2

    def finish(self) -> None:
        """The last, partial pixel (audiowaveform counts it too)."""
        if self.pending:
            self.data += (min(self.pending) - 128, max(self.pending) - 128)
            self.pending = b""


def peaks_of(path: str, work_dir: str) -> bytes:
    """The waveform of the first audio stream of `path` (channels mixed to one) in BBC audiowaveform's
    JSON format, version 2, 8-bit: one min/max pair per `samples_per_pixel` samples, covering it all."""
    rate = _sample_rate(path)
    args = [config.env("FFMPEG_BINARY"), "-hide_banner", "-nostdin", "-loglevel", "error", *_input(path),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(rate), "-c:a", "pcm_u8", "-f", "u8", "pipe:1"]
    peaks = Peaks()
    encode._run(args, os.path.join(work_dir, "peaks.log"), path, peaks, None, threading.Event())
    peaks.finish()
    return waveform_json(peaks, rate)


def waveform_json(peaks: Peaks, rate: int) -> bytes:
    document = {"version": 2, "channels": 1, "sample_rate": rate, "samples_per_pixel": peaks.samples_per_pixel,
                "bits": 8, "length": len(peaks.data) // 2, "data": peaks.data}
    return json.dumps(document, separators=(",", ":")).encode()


def _sample_rate(path: str) -> int:
    info = probe(path)
    track = info.tracks[0] if info.tracks else None
    return track.sample_rate if track and track.sample_rate else FALLBACK_RATE


def _input(path: str) -> list[str]:
    return [arg for name, value in input_options(path).items() for arg in (f"-{name}", value)] + ["-i", path]
