"""The ffmpeg commands of one conversion, built with ffmpeg-python from its Plan (plan.py).

Each option is one small function that returns its share of the command (input or output
arguments, a filter, an extra stream); `build` only puts the shares together. `analysis` is
the first pass of a loudness normalisation: it measures, `build` then applies the measurement.
"""
from __future__ import annotations

import ffmpeg

from services.common import config
from services.common.options import DEFAULT_KBPS, DEFAULT_SILENCE_DB, Options

from .plan import Plan, copies_audio, output_channels, output_rate, track_of
from .probe import AudioTrack, input_options

LOUDNESS = {"I": -16, "TP": -1.5, "LRA": 11}  # EBU R128 for streaming/podcasts; true peak below -1.5 dBTP
COVER_AT = 0.10  # the cover is the frame at 10 % of the video
COVER_MAX_WIDTH = 1280  # a 4K frame would make a megabyte of cover art
MIN_SILENCE_SECONDS = 0.1  # trim_silence: quieter stretches shorter than this are no silence


# ---------------------------------------------------------------- one function per option


def trim_input(options: Options) -> dict:
    """Input seeking: with re-encoding, ffmpeg decodes from before `start` and drops up to it exactly."""
    return {"ss": f"{options.start:.3f}"} if options.start else {}


def trim_output(options: Options) -> dict:
    """The output's length: up to `end`, never over MAX_MEDIA_SECONDS."""
    limit = config.env_float("MAX_MEDIA_SECONDS")
    if options.end is not None:
        limit = min(limit, options.end - (options.start or 0))
    return {"t": f"{limit:.3f}".rstrip("0").rstrip(".")}


def codec_args(plan: Plan, copy: bool) -> dict:
    spec = plan.options.spec
    args = {"acodec": "copy" if copy else spec.encoder, "format": spec.muxer}
    if spec.name == "mp3" and plan.target.startswith("pipe:"):
        args["write_xing"] = 0  # a pipe cannot be rewound to fill the header in
    if spec.name == "m4a" and not plan.target.startswith("pipe:"):
        args["movflags"] = "+faststart"  # the index first: players start before the whole file is there
    return args


def bitrate_args(options: Options) -> dict:
    """CBR at the asked (or default) bitrate; none for lossless formats and for VBR quality."""
    spec = options.spec
    if not spec.bitrates or options.quality is not None:
        return {}
    if options.bitrate is None:
        default = config.env("MP3_BITRATE") if spec.name == "mp3" else f"{DEFAULT_KBPS[spec.name]}k"
        return {"audio_bitrate": default}
    args = {"audio_bitrate": f"{options.bitrate}k"}
    if spec.name == "opus":
        args["vbr"] = "off"  # libopus is VBR unless told: an asked bitrate is a constant one
    return args


def quality_args(options: Options) -> dict:
    return {"q:a": options.quality} if options.quality is not None else {}


def sample_rate_args(options: Options, track: AudioTrack | None) -> dict:
    """`-ar` when the rate must be set (plan.output_rate says when)."""
    rate = output_rate(options, track)
    return {"ar": rate} if rate is not None else {}


def channels_args(options: Options, track: AudioTrack | None) -> dict:
    """`-ac` when the channels must be set (plan.output_channels says when)."""
    channels = output_channels(options, track)
    return {"ac": channels} if channels is not None else {}


def tag_args(options: Options, default_title: str | None) -> dict:
    """Title, artist, album as container tags (ID3, MP4 atoms, Vorbis comments, RIFF INFO)."""
    tags = {"title": options.title or default_title, "artist": options.artist, "album": options.album}
    # ffmpeg-python takes one value per option name; `-metadata:g:N` are all the global `-metadata`.
    return {f"metadata:g:{n}": f"{key}={value}" for n, (key, value) in enumerate(
        (key, value) for key, value in tags.items() if value)}


def loudnorm_filter(options: Options, measured: dict | None) -> tuple[str, dict] | None:
    """Pass 1 (no measurement yet) prints the source's loudness; pass 2 applies it, linearly when it can."""
    if not options.normalize:
        return None
    if measured is None:
        return "loudnorm", {**LOUDNESS, "print_format": "json"}
    return "loudnorm", {**LOUDNESS, "measured_I": measured["input_i"], "measured_TP": measured["input_tp"],
                        "measured_LRA": measured["input_lra"], "measured_thresh": measured["input_thresh"],
                        "offset": measured["target_offset"], "linear": "true", "print_format": "none"}


def silence_filters(options: Options, audible: tuple[float, float | None] | None) -> list[tuple[str, dict]]:
    """trim_silence in two passes, as a streaming filter cannot know a silence is the last one before the
    end (silenceremove's stop options cut at the first long pause; areverse holds the whole audio):
    pass 1 (`audible` unknown) prints the silences below silence_db, silence.audible_part reads them;
    pass 2 keeps the audible part between the leading and the trailing silence."""
    if not options.trim_silence:
        return []
    if audible is None:
        threshold = options.silence_db if options.silence_db is not None else DEFAULT_SILENCE_DB
        return [("silencedetect", {"noise": f"{threshold:g}dB", "d": MIN_SILENCE_SECONDS})]
    start, end = audible
    kept = {"start": f"{start:.6f}", **({"end": f"{end:.6f}"} if end is not None else {})}
    return [("atrim", kept), ("asetpts", {"expr": "PTS-STARTPTS"})]


def cover_stream(plan: Plan):
    """One frame of the video, as a JPEG attached picture; None without a video or cover art."""
    info = plan.info
    if not plan.options.cover or info is None or not info.video_streams:
        return None
    at = (info.duration or 0) * COVER_AT
    frame = ffmpeg.input(plan.source, ss=f"{at:.3f}", **input_options(plan.source))["v:0"]
    return frame.filter("scale", w=f"min({COVER_MAX_WIDTH},iw)", h=-2)


def size_limit_args(plan: Plan) -> dict:
    """ffmpeg stops once its output passes the job's limit (-fs is checked before each packet, so the
    file ends at most one packet past it: one byte over the limit is what tells the converter)."""
    return {"fs": plan.max_bytes + 1} if plan.max_bytes is not None else {}


def cover_args() -> dict:
    return {"vcodec": "mjpeg", "frames:v": 1, "disposition:v": "attached_pic"}


# ---------------------------------------------------------------- the commands


def _audio(plan: Plan, measured: dict | None):
    source = ffmpeg.input(plan.source, **trim_input(plan.options), **input_options(plan.source))
    audio = source[f"a:{plan.options.audio_track or 0}"]
    for name, args in silence_filters(plan.options, plan.audible):
        audio = audio.filter(name, **args)
    loudnorm = loudnorm_filter(plan.options, measured)
    return audio.filter(loudnorm[0], **loudnorm[1]) if loudnorm else audio


def _compile(stream) -> list[str]:
    stream = stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error").overwrite_output()
    return ffmpeg.compile(stream, cmd=config.env("FFMPEG_BINARY"))


def build(plan: Plan) -> list[str]:
    """The conversion: the picked audio stream (the video is never decoded, but for one cover frame)."""
    copy = copies_audio(plan)
    options, track = plan.options, track_of(plan.info, plan.options)
    audio = ffmpeg.input(plan.source, **input_options(plan.source))[f"a:{options.audio_track or 0}"] if copy \
        else _audio(plan, plan.loudness)
    args = {**codec_args(plan, copy), **trim_output(options), **tag_args(options, plan.title), **size_limit_args(plan),
            "sn": None, "dn": None}
    if not copy:
        args.update(**bitrate_args(options), **quality_args(options), **sample_rate_args(options, track),
                    **channels_args(options, track))
    cover = cover_stream(plan)
    streams = [audio, cover] if cover is not None else [audio]
    args.update(cover_args() if cover is not None else {"vn": None})
    return _compile(ffmpeg.output(*streams, plan.target, **args))


def analysis(plan: Plan) -> list[str]:
    """The first pass of a loudness normalisation or a trim_silence: decode the part that will be kept,
    print its loudness (loudnorm) and its silences (silencedetect), with ffmpeg's stats (how far it got)."""
    args = {**trim_output(plan.options), "format": "null", "vn": None, "sn": None, "dn": None}
    command = _compile(ffmpeg.output(_audio(plan, None), "-", **args))
    command[command.index("error")] = "info"  # loudnorm prints its measurement at info level
    return command
