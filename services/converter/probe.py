"""The first step of a conversion: what the upload is, read in-process with PyAV, and whether it may
be converted at all (the container whitelist, an audio track, the length limit)."""
from __future__ import annotations

import errno
from dataclasses import dataclass, field

import av

from services.common import config
from services.common.messaging import PermanentError

from .faults import counted_fault

# The probe's system faults as error numbers (PyAV raises most of them as OSError subclasses).
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
    chapters: list[dict] = field(default_factory=list)  # the container's: {"title", "start", "end"} (seconds)

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio the result will hold (the first audio stream, cut at MAX_MEDIA_SECONDS)."""
        seconds = self.audio_duration if self.audio_duration is not None else (self.duration or 0.0)
        return min(seconds, config.env_float("MAX_MEDIA_SECONDS"))


# Only container formats that hold their media themselves: playlists and manifests (hls, dash,
# concat...) would make ffmpeg open other files or URLs named inside the upload.
FORMAT_WHITELIST = ("mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mpegts,mpeg,avi,flv,asf,ogg,wav,w64,mp3,aac,"
                    "flac,aiff,amr,ac3,eac3,dts,caf,mxf")
# Demuxers that read other resources named inside the upload (local files, URLs) instead of the upload itself.
MAX_CHAPTER_TITLE = 200  # characters kept of a chapter's title (as of a tag option)
INDIRECT_FORMATS = {"hls", "applehttp", "dash", "concat", "sdp", "rtsp", "rtp", "webm_dash_manifest", "imf"}


def input_options(source: str) -> dict[str, str]:
    """ffmpeg and probe input options: read `source` through its own protocol only (the converter's
    loopback HTTP server, or a local file in tests and benchmarks), in an accepted format only."""
    protocols = "http,tcp" if source.startswith("http://") else "file"
    return {"protocol_whitelist": protocols, "format_whitelist": FORMAT_WHITELIST}


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
        raise counted_fault("probe", "timeout", f"probing did not answer within {timeout:.0f} s") from None
    except av.error.FFmpegError as exc:
        if isinstance(exc, SYSTEM_ERRORS) or exc.errno in SYSTEM_ERRNOS:
            raise counted_fault("probe", "system_error",
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
                     tracks[0].duration if audio else None, tracks, chapters_of(container))


def chapters_of(container) -> list[dict]:
    """The container's chapters (MP4, MKV, Ogg, ...) in seconds, in order; an untitled one has title ""."""
    chapters = []
    for chapter in container.chapters():
        base = chapter["time_base"]
        start, end = float(chapter["start"] * base), float(chapter["end"] * base)
        title = "".join(ch if ch.isprintable() else " " for ch in (chapter.get("metadata") or {}).get("title", ""))
        if end > start:
            chapters.append({"title": title.strip()[:MAX_CHAPTER_TITLE], "start": round(start, 3),
                             "end": round(end, 3)})
    return sorted(chapters, key=lambda c: c["start"])


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
