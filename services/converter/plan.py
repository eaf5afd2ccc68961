"""The second step of a conversion: what it will make, decided from the probe and the job's options
before ffmpeg starts (command.py turns these decisions into ffmpeg's arguments).

`expect` checks the options against the media once per job and says how long the result will be
and how large it can grow (output_size.py); the converter reserves that room, then encodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from services.common import config
from services.common.messaging import PermanentError
from services.common.options import Options, mp3_max_kbps

from . import output_size
from .probe import AudioTrack, MediaInfo

DEFAULT_SOURCE_RATE = 48000  # a source whose rate the probe could not read is taken to be at it


@dataclass
class Plan:
    """One ffmpeg run: its input and output, and everything that shapes the command."""

    source: str
    target: str  # "pipe:1" or a file
    options: Options = field(default_factory=Options)
    info: MediaInfo | None = None
    title: str | None = None  # the title tag when the options give none (the upload's name)
    loudness: dict | None = None  # pass 1's measurement (normalize)
    audible: tuple[float, float | None] | None = None  # pass 1's finding (trim_silence): seconds kept, end None: all
    max_bytes: int | None = None  # ffmpeg stops writing past this (the job's output limit)


@dataclass(frozen=True)
class Expected:
    """What a job's result will be, known before ffmpeg writes a byte."""

    seconds: float  # of audio it will hold (progress counts against it; the job records it)
    bound_seconds: float  # the longest ffmpeg may write
    bound_bytes: int  # the most it can take (output_size.py)


def expect(info: MediaInfo, options: Options) -> Expected:
    """The options checked against this media (PermanentError: a missing track, a trim past its end),
    then the result's length and bounds."""
    check_options(info, options)
    seconds = output_seconds(info, options)
    longest = seconds if _length_probed(info, options) else _longest_cut(options)
    return Expected(seconds, longest, output_bound(info, options, longest))


def track_of(info: MediaInfo | None, options: Options) -> AudioTrack | None:
    """The audio stream the options pick; PermanentError when the file has no such stream."""
    index = options.audio_track or 0
    if info is None or not info.tracks:
        return None
    if index >= len(info.tracks):
        raise PermanentError(f"audio_track {index} does not exist: the file has {len(info.tracks)} audio "
                             f"track(s), 0 to {len(info.tracks) - 1}")
    return info.tracks[index]


def check_options(info: MediaInfo, options: Options) -> None:
    """PermanentError for options this file cannot satisfy: a missing audio track, a trim past its end."""
    track = track_of(info, options)
    length = (track.duration if track else None) or info.duration
    if length is None:
        return
    if options.start is not None and options.start >= length:
        raise PermanentError(f"start ({options.start:g} s) is at or beyond the end of the media ({length:.3f} s)")
    if options.end is not None and options.end > length + 0.001:
        raise PermanentError(f"end ({options.end:g} s) is beyond the end of the media ({length:.3f} s)")


def output_seconds(info: MediaInfo, options: Options) -> float:
    """Seconds of audio the output will hold: the picked track, trimmed, cut at MAX_MEDIA_SECONDS."""
    track = track_of(info, options)
    length = (track.duration if track and track.duration is not None else None) or info.duration or 0.0
    end = min(options.end, length) if options.end is not None else length
    return max(min(end - (options.start or 0), config.env_float("MAX_MEDIA_SECONDS")), 0.0)


def bound_seconds(info: MediaInfo, options: Options) -> float:
    """The longest output ffmpeg can write: the kept part of the probed length; of an unknown length,
    what `-t` lets through (MAX_MEDIA_SECONDS, or end - start)."""
    return output_seconds(info, options) if _length_probed(info, options) else _longest_cut(options)


def _length_probed(info: MediaInfo, options: Options) -> bool:
    track = track_of(info, options)
    return bool(track and track.duration is not None) or info.duration is not None


def _longest_cut(options: Options) -> float:
    """What `-t` lets ffmpeg write (command.trim_output): MAX_MEDIA_SECONDS, or end - start."""
    limit = config.env_float("MAX_MEDIA_SECONDS")
    return min(limit, options.end - (options.start or 0)) if options.end is not None else limit


def output_bound(info: MediaInfo, options: Options, longest: float | None = None) -> int:
    """Bytes the result of `options` can take at most, for this file, over `longest` seconds
    (by default bound_seconds)."""
    audio = output_audio(Plan("", "pipe:1", options, info))
    return output_size.upper_bound(options, audio, bound_seconds(info, options) if longest is None else longest)


# ---------------------------------------------------------------- the output's audio


def copies_audio(plan: Plan) -> bool:
    """The stream-copy shortcut: the source is already in the format and no option changes the audio."""
    track = track_of(plan.info, plan.options)
    return track is not None and track.codec == plan.options.spec.codec and not plan.options.changes_audio()


def output_rate(options: Options, track: AudioTrack | None) -> int | None:
    """The sample rate the command sets: the asked one; else the source's, set only when it must be
    (loudnorm works at 192 kHz; LAME lowers a bitrate the source's rate cannot carry, so the rate goes
    up instead). None: the source's rate is kept as it is."""
    if options.sample_rate:
        return options.sample_rate
    source_rate = track.sample_rate if track and track.sample_rate else DEFAULT_SOURCE_RATE
    rate = source_rate
    if options.spec.name == "mp3" and options.bitrate and options.bitrate > mp3_max_kbps(rate):
        rate = 44100 if options.bitrate > 160 else 22050
    if options.normalize and rate not in options.spec.sample_rates:
        rate = min(options.spec.sample_rates, key=lambda allowed: abs(allowed - rate))
    return rate if rate != source_rate or options.normalize else None


def output_channels(options: Options, track: AudioTrack | None) -> int | None:
    """The channel count the command sets: the asked one; else 2 for a source of more (5.1 is folded
    down to stereo). None: the source's channels are kept."""
    if options.channels:
        return options.channels
    return 2 if track and track.channels and track.channels > 2 else None


def output_audio(plan: Plan) -> output_size.Audio:
    """The rate and channels the command gives the output (what its size follows); unknown ones at their highest."""
    track = track_of(plan.info, plan.options)
    source_rate = track.sample_rate if track and track.sample_rate else output_size.UNKNOWN_RATE
    source_channels = track.channels if track and track.channels else output_size.UNKNOWN_CHANNELS
    if copies_audio(plan):
        return output_size.Audio(source_rate, source_channels, copy=True)
    rate, channels = output_rate(plan.options, track), output_channels(plan.options, track)
    return output_size.Audio(source_rate if rate is None else rate, source_channels if channels is None else channels)
