"""The ffmpeg commands of one conversion, built with ffmpeg-python from its Plan (plan.py).

Each option is one small function that returns its share of the command (input or output
arguments, a filter, an extra stream); `build` only puts the shares together. `analysis` is
the first pass of a loudness normalisation: it measures, `build` then applies the measurement.
"""
from __future__ import annotations

import dataclasses
import functools
import shutil

import ffmpeg

from services.common import config
from services.common.options import DEFAULT_KBPS, DEFAULT_SILENCE_DB, Options

from .plan import Plan, Target, copies_audio, output_channels, output_rate, track_of
from .probe import AudioTrack, input_options

LOUDNESS = {"I": -16, "TP": -1.5, "LRA": 11}  # EBU R128 for streaming/podcasts; true peak below -1.5 dBTP
COVER_AT = 0.10  # the cover is the frame at 10 % of the video
COVER_MAX_WIDTH = 1280  # a 4K frame would make a megabyte of cover art
CHAPTERS_INPUT = "@chapters-input@"  # the chapters file's input index, known once the command is compiled
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


def normalize_filter(options: Options, measured: dict | None) -> tuple[str, dict] | None:
    """Pass 1 (no measurement yet): ebur128 prints the source's loudness (its summary only: framelog), at a
    sixth of the CPU of loudnorm's own measuring pass (it resamples to 192 kHz). Pass 2 applies it: one
    gain when that reaches the target (`linear_gain_db`); else loudnorm's dynamic mode, which needs its
    own measuring pass first (the `target_offset` it prints: without it, its output misses by several LU)."""
    if not options.normalize:
        return None
    if measured is None:
        return "ebur128", {"peak": "true", "framelog": "verbose"}
    gain = linear_gain_db(measured)
    if gain is not None:
        return "volume", {"volume": f"{gain:.2f}dB"}
    if "target_offset" not in measured:
        return "loudnorm", {**LOUDNESS, "print_format": "json"}
    return "loudnorm", {**LOUDNESS, "measured_I": measured["input_i"], "measured_TP": measured["input_tp"],
                        "measured_LRA": measured["input_lra"], "measured_thresh": measured["input_thresh"],
                        "offset": measured["target_offset"], "linear": "true", "print_format": "none"}


def linear_gain_db(measured: dict) -> float | None:
    """The one gain that brings the measured source to LOUDNESS, when loudnorm's linear mode would use it
    (the gained true peak stays under the target, the source's range is within the target's); else None.
    Applied by `volume`, it is the same as loudnorm's linear mode without loudnorm's resampling to
    192 kHz and back, which made a normalised job cost 5× a plain one (issue 24)."""
    gain = LOUDNESS["I"] - float(measured["input_i"])
    fits = float(measured["input_tp"]) + gain <= LOUDNESS["TP"] and float(measured["input_lra"]) <= LOUDNESS["LRA"]
    return gain if fits else None


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


def cover_times(info) -> list[float]:
    """Where the cover is taken: at COVER_AT of the video, else its first frame (a seek may land past
    the only keyframe: an MPEG-TS of one group of pictures gives no frame after it)."""
    at = round((info.duration or 0) * COVER_AT, 3)
    return [at, 0.0] if at > 0 else [0.0]


def cover_extraction(plan: Plan, at: float, path: str) -> list[str]:
    """One frame of the video at `at` seconds, scaled, into a JPEG file at `path` (the cover art). Its own
    ffmpeg run, before the conversion: a frame the video cannot give then leaves the result without a cover
    instead of failing it, and the conversion decodes no video (Debian's 5.1 decoded all of it for a
    `-frames:v 1` cover; a static 9.0 ended the whole output after one audio packet)."""
    seek = {"ss": f"{at:.3f}"} if at else {}
    frame = ffmpeg.input(plan.source, **seek, **input_options(plan.source))["v:0"]
    # the JPEG encoder takes full-range pictures only (ffmpeg 9 refuses a video's usual limited range)
    frame = frame.filter("scale", w=f"min({COVER_MAX_WIDTH},iw)", h=-2, out_range="full")
    return _compile(ffmpeg.output(frame, path, vcodec="mjpeg", f="image2", **{"frames:v": 1}))


def cover_frame(plan: Plan):
    """The cover art taken before the run (plan.cover_path), as a stream; None without one."""
    return ffmpeg.input(plan.cover_path)["v:0"] if plan.cover_path else None


def size_limit_args(plan: Plan) -> dict:
    """ffmpeg stops once its output passes the job's limit (-fs is checked before each packet, so the
    file ends at most one packet past it: one byte over the limit is what tells the converter)."""
    return {"fs": plan.max_bytes + 1} if plan.max_bytes is not None else {}


def cover_args() -> dict:
    return {"vcodec": "mjpeg", "disposition:v": "attached_pic"}


# ---------------------------------------------------------------- the commands


def _audio(plan: Plan, measured: dict | None):
    source = ffmpeg.input(plan.source, **trim_input(plan.options), **input_options(plan.source))
    return _processed(source[f"a:{plan.options.audio_track or 0}"], plan.options, measured, plan.audible)


def _processed(audio, options: Options, measured: dict | None, audible: tuple[float, float | None] | None = None):
    """The decoded audio as every output of a run shares it (trim_silence's cut, loudness normalisation)."""
    for name, args in silence_filters(options, audible):
        audio = audio.filter(name, **args)
    normalize = normalize_filter(options, measured)
    return audio.filter(normalize[0], **normalize[1]) if normalize else audio


def _compile(stream) -> list[str]:
    stream = stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error").overwrite_output()
    return ffmpeg.compile(stream, cmd=ffmpeg_executable())


def ffmpeg_executable() -> str:
    """FFMPEG_BINARY when set, else the static ffmpeg of imageio-ffmpeg, else ffmpeg on PATH."""
    return config.env("FFMPEG_BINARY") or _bundled_ffmpeg()


@functools.cache
def _bundled_ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:  # a dev venv without the converter's extra
        return shutil.which("ffmpeg") or "ffmpeg"
    return imageio_ffmpeg.get_ffmpeg_exe()


def build(plan: Plan) -> list[str]:
    """The conversion: the picked audio stream decoded once (the video never, but for one cover frame)
    and encoded into every target of the plan (plan.targets; none: one, `plan.target` in `plan.options`)."""
    targets = plan.targets or [Target(0, plan.options, plan.target, plan.title, max_bytes=plan.max_bytes)]
    source = ffmpeg.input(plan.source, **trim_input(plan.options), **input_options(plan.source))
    raw = source[f"a:{plan.options.audio_track or 0}"]
    copied = [copies(plan, target) for target in targets]
    branches = iter(_fan_out(_processed(raw, plan.options, plan.loudness, plan.audible), copied.count(False), "asplit"))
    with_cover = [target for target in targets if _has_cover(plan, target)]
    covers = iter(_fan_out(cover_frame(plan) if with_cover else None, len(with_cover), "split"))
    outputs = []
    for target, copy in zip(targets, copied, strict=True):
        audio = raw if copy else _cut(next(branches), target)
        if target.meter is not None and not copy:
            if audio is raw:  # nothing filters the target's audio: the meter gets a filtergraph (a thread) of its own
                outputs.append(meter_output(plan, target, raw, own_graph=True))
            else:
                audio, metered = _fan_out(audio, 2, "asplit")
                outputs.append(meter_output(plan, target, metered))
        streams = [audio, next(covers)] if _has_cover(plan, target) else [audio]
        outputs.append(ffmpeg.output(*streams, target.path, **target_args(plan, target, copy)))
    return with_chapters_input(_compile(ffmpeg.merge_outputs(*outputs)), plan.chapters_file)


def meter_output(plan: Plan, target: Target, audio, own_graph: bool = False):
    """The target's audio as its encoder gets it (its channels and rate, its length), metered by ebur128,
    whose readings of every 100 ms ametadata prints to the meter's readings pipe, then written as 8-bit
    mono PCM to its PCM pipe (the waveform's samples): analysis.Meter reads both. `own_graph`: `audio` is
    the decoded input itself, and the meter's filters are this output's own simple filtergraph, which
    ffmpeg runs in a thread beside the encoder's (in the complex graph, they share one thread with every
    other filter: ebur128's true peak then delays the encoder)."""
    filters = _meter_filters(plan, target)
    if own_graph:
        extra = {"af": ",".join(f"{name}={_filter_args(args)}" for name, args in filters)}
    else:
        extra = {}
        for name, args in filters:
            audio = audio.filter(name, **args)
    return ffmpeg.output(audio, f"pipe:{target.meter.pcm_fd}", ac=1, ar=target.meter.rate, acodec="pcm_u8",
                         f="u8", **extra)


def _meter_filters(plan: Plan, target: Target) -> list[tuple[str, dict]]:
    track = track_of(plan.info, target.options)
    shape = {"channel_layouts": {1: "mono", 2: "stereo"}.get(output_channels(target.options, track)),
             "sample_rates": output_rate(target.options, track)}
    shaped = [("aformat", {name: value for name, value in shape.items() if value})] if any(shape.values()) else []
    # the output's -t is a trim after the filters: ebur128, before it, would hear past it
    return shaped + [("atrim", {"duration": trim_output(target.options)["t"]}),
                     ("ebur128", {"peak": "true", "metadata": 1}),
                     ("ametadata", {"mode": "print", "file": f"pipe:{target.meter.readings_fd}"})]


def _filter_args(args: dict) -> str:
    """key=value pairs of one filter in a filtergraph string: a ':' in a value escaped for both levels
    that read it (the graph's, then the filter's options), as ffmpeg-python escapes it."""
    return ":".join(f"{key}={str(value).replace(':', ESCAPED_COLON)}" for key, value in args.items())


ESCAPED_COLON = "\\\\:"


def copies(plan: Plan, target: Target) -> bool:
    """The stream-copy shortcut, for a whole-file target (a chapter is cut exactly: re-encoded)."""
    return target.chapter is None and copies_audio(Plan(plan.source, target.path, target.options, plan.info))


def _has_cover(plan: Plan, target: Target) -> bool:
    return bool(target.options.cover and plan.cover_path is not None)


def _fan_out(stream, count: int, split_filter: str) -> list:
    """`count` branches of one stream: itself when one, a split filter's outputs when more."""
    if stream is None or count == 0:
        return []
    if count == 1:
        return [stream]
    split = stream.filter_multi_output(split_filter, count)
    return [split[n] for n in range(count)]


def _cut(audio, target: Target):
    """A split=chapters target's chapter, cut sample-exactly from the (trimmed) decoded audio."""
    if target.chapter is None:
        return audio
    offset = target.options.start or 0.0
    start, end = target.chapter["start"] - offset, target.chapter["end"] - offset
    return audio.filter("atrim", start=f"{start:.3f}", end=f"{end:.3f}").filter("asetpts", "PTS-STARTPTS")


def target_args(plan: Plan, target: Target, copy: bool) -> dict:
    """One output's arguments: codec, cut, tags, size limit, cover, chapters."""
    options, track = target.options, track_of(plan.info, target.options)
    single = Plan(plan.source, target.path, options, plan.info, target.title, max_bytes=target.max_bytes)
    tags = options
    if target.chapter is not None:  # the chapter's title is the title; the output's own title the album
        tags = dataclasses.replace(options, title=None, album=options.album or options.title)
    args = {**codec_args(single, copy), **trim_output(options), **tag_args(tags, target.title),
            **size_limit_args(single), "sn": None, "dn": None}
    if not copy:
        args.update(**bitrate_args(options), **quality_args(options), **sample_rate_args(options, track),
                    **channels_args(options, track))
    args.update(cover_args() if _has_cover(plan, target) else {"vn": None})
    if target.track:
        args["metadata:g:track"] = f"track={target.track}"  # ID3 TRCK, MP4 trkn, Vorbis TRACKNUMBER
    args.update(chapter_args(plan, target))
    return args


def chapter_args(plan: Plan, target: Target) -> dict:
    """The target's chapters from the run's chapters file (none for a split result, a chapter itself).
    mp3 (ID3v2 CHAP/CTOC), m4a and opus write the file's chapters; ffmpeg's FLAC muxer writes none, so
    FLAC gets them as Vorbis comment chapters (CHAPTERnnn, CHAPTERnnnNAME), without the source's tags
    (ffmpeg reads the chapter comments back in order only)."""
    if target.chapter is not None or not target.chapters or plan.chapters_file is None:
        return {"map_chapters": -1}
    args: dict = {"map_chapters": CHAPTERS_INPUT}
    if target.options.spec.name == "flac":
        args["map_metadata"] = -1
        for number, chapter in enumerate(target.chapters, 1):
            args[f"metadata:g:c{number:03d}a"] = f"CHAPTER{number:03d}={_clock(chapter['start'])}"
            args[f"metadata:g:c{number:03d}b"] = f"CHAPTER{number:03d}NAME={chapter['title']}"
    return args


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3600000:02d}:{millis // 60000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"


def ffmetadata(chapters: list[dict]) -> str:
    """The chapters as an FFMETADATA1 file (times in milliseconds), the input `-map_chapters` reads."""
    lines = [";FFMETADATA1"]
    for chapter in chapters:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(chapter['start'] * 1000)}",
                  f"END={round(chapter['end'] * 1000)}", f"title={_escape(chapter['title'])}"]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    for special in ("\\", "=", ";", "#", "\n"):
        value = value.replace(special, "\\" + special)
    return value


def with_chapters_input(command: list[str], chapters_file: str | None) -> list[str]:
    """The chapters file added as the last input, and the outputs' `-map_chapters` pointed at it
    (ffmpeg-python knows inputs only by the streams taken from them)."""
    if chapters_file is None or CHAPTERS_INPUT not in command:
        return [("-1" if arg == CHAPTERS_INPUT else arg) for arg in command]
    inputs = [n for n, arg in enumerate(command) if arg == "-i"]
    at = inputs[-1] + 2
    command = command[:at] + ["-f", "ffmetadata", "-i", chapters_file] + command[at:]
    return [(str(len(inputs)) if arg == CHAPTERS_INPUT else arg) for arg in command]


def analysis(plan: Plan) -> list[str]:
    """The first pass of a loudness normalisation or a trim_silence: decode the part that will be kept,
    print its loudness (ebur128; loudnorm's, when plan.loudness says its dynamic mode will run) and its
    silences (silencedetect), with ffmpeg's stats (how far it got)."""
    args = {**trim_output(plan.options), "format": "null", "vn": None, "sn": None, "dn": None}
    command = _compile(ffmpeg.output(_audio(plan, plan.loudness), "-", **args))
    command[command.index("error")] = "info"  # ebur128 and silencedetect print at info level
    return command
