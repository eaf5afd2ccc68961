"""The output options of one upload: what users may ask for, the allowed values, one canonical form.

`parse` reads them from a str→str mapping (the multipart form fields of POST /upload, or a tus
upload's Upload-Metadata) and raises OptionError for the first bad one; the gateway answers that
with 400 `invalid_option` before anything is stored. The job stores `Options.to_dict()` (only the
options given, in a fixed form: the job view shows it, and it is part of the reuse key); the
converter reads it back with `Options.from_dict`. Keys the mapping has that are no option (tus
clients send `filename`, `filetype`) are ignored.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields as dataclass_fields
from typing import Mapping

from . import config


class OptionError(ValueError):
    """A bad option value: `field` names it, the message says what is allowed."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Format:
    name: str
    encoder: str  # ffmpeg encoder
    muxer: str  # ffmpeg output format
    extension: str
    media_type: str  # Content-Type of the download
    codec: str  # codec name the probe reports (libavcodec's): a source in it may be copied
    bitrates: tuple[int, ...] = ()  # kbps allowed for CBR; empty: lossless, no bitrate
    sample_rates: tuple[int, ...] = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
    cover: bool = False  # the container carries an attached picture
    seekable: bool = False  # the muxer rewrites its header at the end: ffmpeg writes a file, not a pipe


MP3_BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # MPEG-1 Layer III's own
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("mp3", "libmp3lame", "mp3", "mp3", "audio/mpeg", "mp3", MP3_BITRATES, cover=True),
    Format("m4a", "aac", "ipod", "m4a", "audio/mp4", "aac", tuple(range(32, 321)), cover=True, seekable=True),
    Format("opus", "libopus", "ogg", "opus", "audio/ogg", "opus", tuple(range(16, 257)),
           sample_rates=(8000, 12000, 16000, 24000, 48000)),
    Format("flac", "flac", "flac", "flac", "audio/flac", "flac", cover=True, seekable=True),
    Format("wav", "pcm_s16le", "wav", "wav", "audio/wav", "pcm_s16le", seekable=True),
)}
DEFAULT_FORMAT = "mp3"
# Bitrate when none is asked for: MP3 keeps the deployment's MP3_BITRATE; these are the encoders' sweet spots.
DEFAULT_KBPS = {"m4a": 192, "opus": 128}
DEFAULT_SILENCE_DB = -50.0
SPLITS = ("chapters",)
TAG_FIELDS = ("title", "artist", "album")
MAX_TAG_CHARS = 200
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_TIME = re.compile(r"^(?:(?:(\d{1,2}):)?([0-5]?\d):)?(\d{1,5}(?:\.\d{1,3})?)$", re.ASCII)


@dataclass(frozen=True)
class Options:
    """What the user asked for; None/False means "as today" (the deployment's MP3)."""

    format: str = DEFAULT_FORMAT
    bitrate: int | None = None  # kbps, CBR
    quality: int | None = None  # LAME VBR 0 (best) … 9
    sample_rate: int | None = None
    channels: int | None = None
    start: float | None = None  # seconds
    end: float | None = None
    normalize: bool = False
    audio_track: int | None = None
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    cover: bool = False
    trim_silence: bool = False  # leading and trailing silence below silence_db removed
    silence_db: float | None = None  # dBFS, -90 to -10; None with trim_silence: DEFAULT_SILENCE_DB
    split: str | None = None  # "chapters": one result per chapter of the source

    @property
    def spec(self) -> Format:
        return FORMATS[self.format]

    def changes_audio(self) -> bool:
        """Whether an option asks for other audio than the source's (no stream copy then; the format
        matters only through its codec, which the converter compares with the source's)."""
        return any(value not in (None, False) for value in (self.bitrate, self.quality, self.sample_rate,
                                                            self.channels, self.start, self.end, self.normalize,
                                                            self.trim_silence))

    def used(self) -> list[str]:
        """The names of the options given (format only when not the default): for metrics."""
        return [name for name, value in self.to_dict().items() if name != "format" or value != DEFAULT_FORMAT]

    def to_dict(self) -> dict:
        """The canonical form: `format` always, every other option only when given; bitrate as "320k"."""
        shown: dict = {}
        for f in dataclass_fields(self):
            value = getattr(self, f.name)
            if f.name == "format" or value not in (None, False):
                shown[f.name] = f"{value}k" if f.name == "bitrate" else value
        return shown

    @classmethod
    def from_dict(cls, stored: Mapping | None) -> "Options":
        """Read back a stored `to_dict()` (checked again: a stored value is input like any other)."""
        return parse({key: _as_text(value) for key, value in (stored or {}).items()})


def fields_named() -> list[str]:
    """Every option's name (the form fields and metadata keys; the metrics' label values)."""
    return [f.name for f in dataclass_fields(Options)]


def _as_text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- one reader per option


def _choice(name: str, raw: str, allowed) -> str:
    value = raw.strip().lower()
    if value not in allowed:
        raise OptionError(name, f"must be one of {', '.join(allowed)}")
    return value


def _integer(name: str, raw: str, low: int, high: int, what: str | None = None) -> int:
    text = raw.strip()
    if not re.fullmatch(r"[0-9]{1,6}", text) or not low <= int(text) <= high:
        raise OptionError(name, what or f"must be an integer from {low} to {high}")
    return int(text)


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in TRUE + FALSE:
        raise OptionError(name, "must be true or false")
    return value in TRUE


def read_bitrate(raw: str, spec: Format) -> int:
    if not spec.bitrates:
        raise OptionError("bitrate", f"{spec.name} is lossless and takes no bitrate")
    low, high = spec.bitrates[0], spec.bitrates[-1]
    allowed = ", ".join(f"{k}k" for k in spec.bitrates) if spec.name == "mp3" else f"{low}k to {high}k"
    match = re.fullmatch(r"([0-9]{1,4})k?", raw.strip().lower())
    if not match or int(match.group(1)) not in spec.bitrates:
        raise OptionError("bitrate", f"for {spec.name} must be one of {allowed} (kbit/s)")
    return int(match.group(1))


def read_time(name: str, raw: str) -> float:
    """Seconds ("12.5") or [HH:]MM:SS(.mmm), up to MAX_MEDIA_SECONDS."""
    match = _TIME.fullmatch(raw.strip())
    limit = config.env_float("MAX_MEDIA_SECONDS")
    what = f"must be seconds (12.5) or HH:MM:SS(.mmm), from 0 to {limit:.0f} s"
    if not match:
        raise OptionError(name, what)
    hours, minutes, seconds = int(match.group(1) or 0), int(match.group(2) or 0), float(match.group(3))
    if match.group(2) is not None and seconds >= 60:
        raise OptionError(name, what)
    total = round(hours * 3600 + minutes * 60 + seconds, 3)
    if total > limit:
        raise OptionError(name, what)
    return total


def read_tag(name: str, raw: str) -> str:
    text = unicodedata.normalize("NFC", raw).strip()
    if len(text) > MAX_TAG_CHARS or any(unicodedata.category(ch)[0] == "C" for ch in text):
        raise OptionError(name, f"must be text of at most {MAX_TAG_CHARS} characters, without control characters")
    return text


def mp3_max_kbps(sample_rate: int) -> int:
    """MPEG-1 (32 kHz and up) goes to 320k, MPEG-2 (16–24 kHz) to 160k, MPEG-2.5 (below) to 64k."""
    return 320 if sample_rate >= 32000 else 160 if sample_rate >= 16000 else 64


# ---------------------------------------------------------------- the whole set


def parse(fields: Mapping[str, str]) -> Options:
    """The options in `fields`; OptionError names the first bad one and what it allows."""
    spec = FORMATS[_choice("format", fields.get("format") or DEFAULT_FORMAT, tuple(FORMATS))]
    given = {name: value for name, value in fields.items() if value is not None and str(value).strip() != ""}
    values: dict = {"format": spec.name}
    if "bitrate" in given:
        values["bitrate"] = read_bitrate(given["bitrate"], spec)
    if "quality" in given:
        values["quality"] = _quality(given["quality"], spec, values)
    if "sample_rate" in given:
        values["sample_rate"] = _sample_rate(given["sample_rate"], spec, values.get("bitrate"))
    if "channels" in given:
        values["channels"] = _integer("channels", given["channels"], 1, 2, "must be 1 (mono) or 2 (stereo)")
    for name in ("start", "end"):
        if name in given:
            values[name] = read_time(name, given[name])
    if values.get("end") is not None and values["end"] <= (values.get("start") or 0):
        raise OptionError("end", "must be later than start (and above 0)")
    if "silence_db" in given:
        values["silence_db"] = _decibels("silence_db", given["silence_db"], -90, -10)
    if "split" in given:
        values["split"] = _choice("split", given["split"], SPLITS + ("none",))
        values["split"] = None if values["split"] == "none" else values["split"]
    for name in ("normalize", "cover", "trim_silence"):
        if name in given:
            values[name] = _flag(name, given[name])
    if values.get("silence_db") is not None and not values.get("trim_silence"):
        raise OptionError("silence_db", "is the threshold of trim_silence: give trim_silence=true with it")
    if values.get("cover") and not spec.cover:
        with_cover = ", ".join(f.name for f in FORMATS.values() if f.cover)
        raise OptionError("cover", "cover art is available for " + with_cover)
    if "audio_track" in given:
        track = _integer("audio_track", given["audio_track"], 0, 63,
                         "must be the index of an audio track, from 0 (the first) to 63")
        values["audio_track"] = track or None  # 0 is the default: one canonical form for both
    for name in TAG_FIELDS:
        if name in given:
            values[name] = read_tag(name, given[name]) or None
    return Options(**values)


def _decibels(name: str, raw: str, low: float, high: float) -> float:
    text = raw.strip().lower().removesuffix("db").strip()
    if not re.fullmatch(r"-?[0-9]{1,3}(?:\.[0-9])?", text) or not low <= float(text) <= high:
        raise OptionError(name, f"must be a level in dBFS from {low:g} to {high:g}")
    return float(text)


def _quality(raw: str, spec: Format, values: dict) -> int:
    if spec.name != "mp3":
        raise OptionError("quality", "VBR quality is for mp3 only; use bitrate for " + spec.name)
    if "bitrate" in values:
        raise OptionError("quality", "give either bitrate (CBR) or quality (VBR), not both")
    return _integer("quality", raw, 0, 9, "must be an integer from 0 (best) to 9 (smallest) (LAME VBR)")


def _sample_rate(raw: str, spec: Format, kbps: int | None) -> int:
    allowed = ", ".join(map(str, spec.sample_rates))
    rate = _integer("sample_rate", raw, 0, 999999, f"for {spec.name} must be one of {allowed}")
    if rate not in spec.sample_rates:
        raise OptionError("sample_rate", f"for {spec.name} must be one of {allowed}")
    if spec.name == "mp3" and kbps and kbps > mp3_max_kbps(rate):
        raise OptionError("bitrate", f"for mp3 at sample_rate {rate} must be at most {mp3_max_kbps(rate)}k")
    return rate
