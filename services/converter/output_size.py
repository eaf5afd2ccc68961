"""An upper bound of a result's size, known before ffmpeg writes a byte (pure: no I/O).

bytes ≤ seconds × (the output's highest byte rate + FRAMING_PER_SECOND) + FIXED_OVERHEAD
        (+ COVER_MAX_BYTES with cover art)

The highest byte rate per format: CBR mp3 its bitrate; VBR mp3 the highest bitrate of its MPEG
version (320k, 160k below 32 kHz); m4a and opus their asked (or default) bitrate, which the
encoders hold on average (RATE_MARGIN over it, for every lossy format); wav its PCM (rate ×
channels × 2 bytes, s16); flac the PCM it compresses, at 24 bits (ffmpeg encodes float sources as
24-bit FLAC), verbatim frames being its worst case.
A stream copy keeps the source's rate and channels (no fold-down to stereo). The seconds are the
kept part (start/end) of the probed length; a file of unknown length is bounded by the longest
output ffmpeg is let to write (`-t`: MAX_MEDIA_SECONDS, or end - start).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from services.common import config
from services.common.options import DEFAULT_KBPS, Options, mp3_max_kbps

RATE_MARGIN = 1.05  # ffmpeg's aac and libopus hold their bitrate on average, a few % over in a stretch
FRAMING_PER_SECOND = 1000  # MP4 sample tables (~8 B a frame), Ogg pages, FLAC frame headers: well under 1 kB/s
FIXED_OVERHEAD = 64 * 1024  # headers, Xing/LAME frame, tags (3 × 200 characters), moov boxes
COVER_MAX_BYTES = 4 * 1024 * 1024  # one JPEG frame, at most 1280 px wide (command.COVER_MAX_WIDTH)
UNKNOWN_RATE = 192000  # a source whose sample rate the probe could not read: the highest common one
UNKNOWN_CHANNELS = 8  # and whose channels it could not read: 7.1
PCM_BYTES = {"wav": 2, "flac": 3}  # bytes per sample: pcm_s16le; FLAC of a float source is 24-bit


@dataclass(frozen=True)
class Audio:
    """The output's audio as the command makes it: rate (Hz), channels, and whether it is a stream copy."""

    sample_rate: int
    channels: int
    copy: bool = False


def kbps(options: Options, audio: Audio) -> float:
    """The highest average bitrate of a lossy output."""
    if audio.copy:  # the source's own bitrate, whatever it is: the codec's ceiling
        return COPY_KBPS[options.format](audio)
    if options.quality is not None:  # VBR: LAME's frames go up to the top bitrate of the MPEG version
        return mp3_max_kbps(audio.sample_rate)
    if options.bitrate is not None:
        return options.bitrate
    return configured_mp3_kbps() if options.format == "mp3" else DEFAULT_KBPS[options.format]


COPY_KBPS = {
    "mp3": lambda audio: 320,  # MPEG-1 Layer III's top bitrate
    "m4a": lambda audio: 6 * audio.sample_rate * audio.channels / 1000,  # AAC: 6144 bits a 1024-sample frame a channel
    "opus": lambda audio: 256 * audio.channels,  # libopus's top per channel
}


def configured_mp3_kbps() -> float:
    """MP3_BITRATE as ffmpeg reads it ("192k", "192000"); 320 when it cannot be read (the top one)."""
    text = config.env("MP3_BITRATE").strip().lower()
    try:
        return float(text[:-1]) if text.endswith("k") else float(text) / 1000
    except ValueError:
        return 320


def bytes_per_second(options: Options, audio: Audio) -> float:
    """The highest average byte rate of the output's audio."""
    if options.format in PCM_BYTES:  # exact: a sample is its bytes
        return audio.sample_rate * audio.channels * PCM_BYTES[options.format]
    return kbps(options, audio) * 1000 / 8 * RATE_MARGIN


def upper_bound(options: Options, audio: Audio, seconds: float) -> int:
    """Bytes the result can take at most: `seconds` of audio at the output's rate, plus its container."""
    media = seconds * (bytes_per_second(options, audio) + FRAMING_PER_SECOND)
    cover = COVER_MAX_BYTES if options.cover else 0
    return math.ceil(media) + FIXED_OVERHEAD + cover


def megabytes(nbytes: float) -> str:
    """Sizes in words for users: '690 MB', '4.2 MB', '0.3 MB' (decimal megabytes, as disks are sold)."""
    value = nbytes / 1e6
    return f"{value:.0f} MB" if value >= 10 else f"{value:.1f} MB"
