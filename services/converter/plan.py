"""The second step of a conversion: what it will make, decided from the probe and the job's options
before ffmpeg starts (command.py turns these decisions into ffmpeg's arguments).

`expect` checks the options against the media once per job and says how long the result will be
and how large it can grow (output_size.py); the converter reserves that room, then encodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

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
    targets: list["Target"] = field(default_factory=list)  # several outputs of one decode; empty: `target`
    chapters_file: str | None = None  # FFMETADATA1 with the targets' chapters (command.ffmetadata)
    cover_path: str | None = None  # the cover art taken from the video (a JPEG: encode.take_cover)


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
    (loudnorm, the dynamic normalisation, works at 192 kHz; LAME lowers a bitrate the source's rate cannot
    carry, so the rate goes up instead). None: the source's rate is kept as it is."""
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


# ---------------------------------------------------------------- several outputs, chapters, split

MAX_SPLIT_CHAPTERS = 256  # one encoder each in one ffmpeg run: bounded
MIN_CHAPTER_SECONDS = 0.001  # a chapter clipped to less than this by a trim is dropped


class Meter(Protocol):
    """What the command needs of a result's in-run analysis (analysis.Meter): the write ends of its pipes."""

    rate: int  # of the 8-bit mono PCM written to pcm_fd
    readings_fd: int
    pcm_fd: int


@dataclass
class Target:
    """One file of a job's run: an output's options, where ffmpeg writes it, and what it carries."""

    output: int  # index into the job's outputs
    options: Options
    path: str = "pipe:1"
    title: str | None = None  # the title tag when the options give none
    chapter: dict | None = None  # split=chapters: {"index", "count", "title", "start", "end"} (source seconds)
    chapters: list[dict] = field(default_factory=list)  # embedded: relative to the output's start
    track: str | None = None  # "n/N" of a split result
    seconds: float = 0.0  # of audio it will hold
    bound_seconds: float = 0.0
    bound_bytes: int = 0
    max_bytes: int | None = None
    meter: Meter | None = None  # measures it as ffmpeg encodes it (none for a stream copy)


def shared_key(options: Options) -> tuple:
    """Outputs with the same key share one decode (one ffmpeg run): the same track, cut and processing."""
    return (options.audio_track, options.start, options.end, options.normalize, options.trim_silence,
            options.silence_db)


def chapters_within(chapters: list[dict], options: Options) -> list[dict]:
    """The source's chapters as an output trimmed to start/end holds them: shifted to its start,
    clipped to its end; those left shorter than MIN_CHAPTER_SECONDS are dropped."""
    start = options.start or 0.0
    end = options.end if options.end is not None else float("inf")
    kept = []
    for chapter in chapters:
        lo, hi = max(chapter["start"], start), min(chapter["end"], end)
        if hi - lo >= MIN_CHAPTER_SECONDS:
            kept.append({"title": chapter["title"], "start": round(lo - start, 3), "end": round(hi - start, 3)})
    return kept


def targets_of(info: MediaInfo, outputs: list[Options], title: str | None) -> list[Target]:
    """Every file the job makes, in order: one per output, one per chapter of a split=chapters output
    (PermanentError: an output this file cannot satisfy)."""
    targets = []
    for index, options in enumerate(outputs):
        expected = expect(info, options)
        if options.split != "chapters":
            targets.append(Target(index, options, title=title, chapters=chapters_within(info.chapters, options),
                                  seconds=expected.seconds, bound_seconds=expected.bound_seconds,
                                  bound_bytes=expected.bound_bytes))
            continue
        targets += split_targets(info, index, options, title)
    return targets


def split_targets(info: MediaInfo, index: int, options: Options, title: str | None) -> list[Target]:
    """One target per chapter (in the trimmed part); a source without chapters: PermanentError."""
    chapters = chapters_within(info.chapters, options)
    if not chapters:
        raise PermanentError("split=chapters: the file has no chapters" + (
            " in the part kept by start and end" if info.chapters else "") + "; convert it without split")
    if len(chapters) > MAX_SPLIT_CHAPTERS:
        raise PermanentError(f"split=chapters: the file has {len(chapters)} chapters; at most "
                             f"{MAX_SPLIT_CHAPTERS} can be split")
    count, offset = len(chapters), options.start or 0.0
    targets = []
    for number, chapter in enumerate(chapters, 1):
        seconds = chapter["end"] - chapter["start"]
        chapter_title = chapter["title"] or f"Chapter {number}"
        targets.append(Target(index, options, title=chapter_title,
                              chapter={"index": number, "count": count, "title": chapter_title,
                                       "start": round(chapter["start"] + offset, 3),
                                       "end": round(chapter["end"] + offset, 3)},
                              track=f"{number}/{count}", seconds=seconds, bound_seconds=seconds,
                              bound_bytes=output_bound(info, options, seconds)))
    return targets


def runs_of(targets: list[Target]) -> list[list[Target]]:
    """The targets grouped into ffmpeg runs: one per shared_key, in the order first met."""
    runs: dict[tuple, list[Target]] = {}
    for target in targets:
        runs.setdefault(shared_key(target.options), []).append(target)
    return list(runs.values())


def streamable(targets: list[Target]) -> bool:
    """A job of one target whose muxer can write to a pipe: it streams into storage while it encodes."""
    if len(targets) != 1:
        return False
    options = targets[0].options
    return not (options.spec.seekable or options.quality is not None or options.cover)
