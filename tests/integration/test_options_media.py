"""The converter's functions on real files, each option measured in the output with ffprobe, ffmpeg
(ebur128) and mutagen: never by reading the command line."""
from __future__ import annotations

import io
import json
import re
import struct
import subprocess
from pathlib import Path

import mutagen
import pytest

from services.common.messaging import PermanentError, TransientError
from services.common.options import FORMATS, parse
from services.converter import encode, plan, probe
from devkit.media import make_media

# Half a tone, half noise: a VBR encoder spends very different bits on the two.
VARIED = "aevalsrc=exprs='0.4*sin(440*2*PI*t)*lt(t\\,1)+0.6*(random(0)-0.5)*gte(t\\,1)|0.4*sin(660*2*PI*t)':s=44100"


def convert(source: Path, target: Path, fields: dict, title: str = "clip", progress: list | None = None) -> Path:
    info = probe.probe(str(source))
    with open(target, "wb") as sink:
        encode.convert(str(source), info, sink, str(target.parent / f"{target.name}.log"), options=parse(fields),
                       title=title, on_progress=progress.append if progress is not None else None)
    return target


def ffprobe(path: Path, *extra: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", *extra, "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def audio_stream(data: dict) -> dict:
    return next(s for s in data["streams"] if s["codec_type"] == "audio")


def packet_sizes(path: Path) -> list[int]:
    data = ffprobe(path, "-show_packets", "-select_streams", "a:0")
    return [int(p["size"]) for p in data["packets"]]


def loudness(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP), as ffmpeg's ebur128 filter measures them."""
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
                           "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True, check=True)
    summary = done.stderr[done.stderr.rindex("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))
    return integrated, peak


def opus_head(path: Path) -> tuple[int, int]:
    """Channels and input sample rate from the OpusHead packet (ffprobe always says 48000 for Opus)."""
    data = path.read_bytes()
    at = data.index(b"OpusHead")
    return data[at + 9], struct.unpack("<I", data[at + 12:at + 16])[0]


def dump(path: Path) -> str:
    data = ffprobe(path)
    fmt = data["format"]
    lines = [f"{path.name}: format={fmt['format_name']} duration={float(fmt['duration']):.3f} "
             f"bit_rate={fmt.get('bit_rate')} tags={fmt.get('tags', {})}"]
    for s in data["streams"]:
        lines.append(f"  stream #{s['index']} {s['codec_type']} {s['codec_name']} "
                     + (f"{s.get('sample_rate')} Hz {s.get('channels')} ch bit_rate={s.get('bit_rate')}"
                        if s["codec_type"] == "audio" else
                        f"{s.get('width')}x{s.get('height')} attached_pic={s['disposition'].get('attached_pic')}"))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3 s of 320x240 video with stereo 44.1 kHz audio."""
    folder = tmp_path_factory.mktemp("clip")
    return make_media(folder / "clip.mp4", seconds=3, audio=VARIED)


CONTAINERS = {"mp3": ("mp3", "mp3"), "m4a": ("mov,mp4,m4a,3gp,3g2,mj2", "aac"), "opus": ("ogg", "opus"),
              "flac": ("flac", "flac"), "wav": ("wav", "pcm_s16le")}


def test_each_format_with_tags_and_cover(clip, tmp_path):
    """Container and codec of each format, its tags read back by mutagen, the cover where it fits."""
    for name, spec in FORMATS.items():
        fields = {"format": name, "artist": "The Artist", "album": "Ünïcode 日本"}
        if spec.cover:
            fields["cover"] = "true"
        out = convert(clip, tmp_path / f"out.{spec.extension}", fields, title="My clip")
        print("\n" + dump(out))
        data = ffprobe(out)
        assert (data["format"]["format_name"], audio_stream(data)["codec_name"]) == CONTAINERS[name]
        assert abs(float(data["format"]["duration"]) - 3) < 0.1, name
        tags = mutagen.File(out, easy=True)
        assert tags is not None, name
        if name == "wav":  # RIFF INFO: mutagen reads no tags there; ffprobe does
            assert {k.lower(): v for k, v in data["format"]["tags"].items()}.items() >= {
                "title": "My clip", "artist": "The Artist", "album": "Ünïcode 日本"}.items()
        else:
            expected = (["My clip"], ["The Artist"], ["Ünïcode 日本"])
            assert (tags["title"], tags["artist"], tags["album"]) == expected, name
        pictures = [s for s in data["streams"] if s["codec_type"] == "video"]
        if spec.cover:
            assert len(pictures) == 1 and pictures[0]["disposition"]["attached_pic"] == 1, name
            assert (pictures[0]["codec_name"], pictures[0]["width"], pictures[0]["height"]) == ("mjpeg", 320, 240)
        else:
            assert pictures == [], name


def test_bitrate_cbr_sample_rate_channels(clip, tmp_path):
    mp3 = convert(clip, tmp_path / "cbr.mp3", {"bitrate": "128k", "sample_rate": "22050", "channels": "1"})
    stream = audio_stream(ffprobe(mp3))
    assert (stream["sample_rate"], stream["channels"], stream["bit_rate"]) == ("22050", 1, "128000")
    sizes = packet_sizes(mp3)
    assert max(sizes) - min(sizes) <= 1, "CBR frames differ only by the padding byte"

    m4a = convert(clip, tmp_path / "cbr.m4a", {"format": "m4a", "bitrate": "96k", "sample_rate": "32000"})
    stream = audio_stream(ffprobe(m4a))
    assert (stream["sample_rate"], stream["channels"]) == ("32000", 2)
    assert abs(int(stream["bit_rate"]) - 96000) < 96000 * 0.15, stream["bit_rate"]

    opus = convert(clip, tmp_path / "cbr.opus", {"format": "opus", "bitrate": "64k", "sample_rate": "16000",
                                                 "channels": "1"})
    assert opus_head(opus) == (1, 16000)
    sizes = packet_sizes(opus)[1:-1]
    assert max(sizes) - min(sizes) <= 2, "hard CBR: every Opus packet the same size"
    measured = sum(packet_sizes(opus)) * 8 / float(ffprobe(opus)["format"]["duration"])
    assert abs(measured - 64000) < 64000 * 0.1, measured

    flac = convert(clip, tmp_path / "low.flac", {"format": "flac", "sample_rate": "8000", "channels": "1"})
    stream = audio_stream(ffprobe(flac))
    assert (stream["sample_rate"], stream["channels"]) == ("8000", 1)


def test_vbr_quality_varies_the_bitrate(clip, tmp_path):
    vbr = convert(clip, tmp_path / "vbr.mp3", {"quality": "2"})
    sizes = packet_sizes(vbr)
    assert max(sizes) > 1.5 * min(sizes), f"VBR frames should differ in size: {min(sizes)}..{max(sizes)}"
    assert b"Xing" in vbr.read_bytes()[:4096], "a VBR MP3 carries its Xing header (seekable, right duration)"
    assert abs(float(ffprobe(vbr)["format"]["duration"]) - 3) < 0.1
    smaller = convert(clip, tmp_path / "vbr9.mp3", {"quality": "9"})
    assert smaller.stat().st_size < vbr.stat().st_size * 0.8


def test_trim_with_progress_against_the_trimmed_length(clip, tmp_path):
    seen: list[float] = []
    out = convert(clip, tmp_path / "trim.m4a", {"format": "m4a", "start": "0.5", "end": "00:00:02.250"}, progress=seen)
    assert abs(float(ffprobe(out)["format"]["duration"]) - 1.75) <= 0.05
    assert plan.output_seconds(probe.probe(str(clip)), parse({"start": "0.5", "end": "2.25"})) == pytest.approx(1.75)
    assert seen and max(seen) <= 1.75 + 0.1, seen  # reported against the trimmed output, not the 3 s source
    wav = convert(clip, tmp_path / "tail.wav", {"format": "wav", "start": "2"})
    assert abs(float(ffprobe(wav)["format"]["duration"]) - 1) <= 0.05


def test_combination_trim_normalize_tags_cover(tmp_path):
    quiet = make_media(tmp_path / "quiet.mkv", seconds=6, audio="aevalsrc=exprs='0.05*sin(500*2*PI*t)':s=44100")
    before, _ = loudness(quiet)
    seen: list[float] = []
    out = convert(quiet, tmp_path / "all.mp3", {"start": "1", "end": "4.5", "normalize": "true", "title": "T",
                                                "artist": "A", "album": "B", "cover": "true"}, progress=seen)
    print("\n" + dump(out))
    integrated, peak = loudness(out)
    assert before < -25 and abs(integrated + 16) <= 1, (before, integrated)
    assert peak <= -1.0, peak
    data = ffprobe(out)
    assert abs(float(data["format"]["duration"]) - 3.5) <= 0.05
    assert audio_stream(data)["sample_rate"] == "44100"  # loudnorm's 192 kHz set back to the source's
    tags = mutagen.File(out, easy=True)
    assert (tags["title"], tags["artist"], tags["album"]) == (["T"], ["A"], ["B"])
    assert [s["disposition"]["attached_pic"] for s in data["streams"] if s["codec_type"] == "video"] == [1]
    assert max(seen) > 3.5 / 2 and max(seen) <= 3.5 + 0.1, "both passes report, against the trimmed length"


def test_a_cover_from_a_video_whose_seek_finds_no_frame_is_its_first(tmp_path):
    """An MPEG-TS of one group of pictures: seeking to 10 % lands past its only keyframe, so the cover
    is the first frame (the static ffmpeg failed the whole output for a cover stream without frames)."""
    mp4 = make_media(tmp_path / "gop.mp4", seconds=2)
    ts = tmp_path / "gop.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-c", "copy", "-f", "mpegts", str(ts)], check=True)
    out = convert(ts, tmp_path / "covered.m4a", {"format": "m4a", "cover": "true"})
    data = ffprobe(out)
    assert [s["disposition"]["attached_pic"] for s in data["streams"] if s["codec_type"] == "video"] == [1]
    assert abs(float(data["format"]["duration"]) - 2) <= 0.1


@pytest.mark.parametrize("spiky", [False, True], ids=["one-gain", "dynamic"])
def test_normalize_reaches_the_target_by_one_gain_or_by_loudnorm(spiky, tmp_path):
    """A quiet steady tone takes one gain (command.linear_gain_db); with clicks near 0 dBFS one gain would
    clip them, so loudnorm's dynamic mode runs: either way -16 LUFS and the true peak under -1.5 dBTP."""
    clicks = "+0.9*lt(mod(t\\,0.5)\\,0.0005)" if spiky else ""
    source = make_media(tmp_path / "quiet.mkv", seconds=6,
                        audio=f"aevalsrc=exprs='0.03*sin(500*2*PI*t){clicks}':s=44100")
    out = convert(source, tmp_path / "loud.mp3", {"normalize": "true"})
    integrated, peak = loudness(out)
    assert abs(integrated + 16) <= 1, integrated
    assert peak <= -1.0, peak


def test_impossible_options_fail_with_their_reason(clip, tmp_path):
    info = probe.probe(str(clip))
    for fields, reason in (({"start": "3"}, "start (3 s) is at or beyond the end of the media (3.0"),
                           ({"end": "00:00:09"}, "end (9 s) is beyond the end of the media"),
                           ({"audio_track": "1"},
                            "audio_track 1 does not exist: the file has 1 audio track(s), 0 to 0")):
        with pytest.raises(PermanentError) as caught:
            encode.convert(str(clip), info, io.BytesIO(), str(tmp_path / "log"), options=parse(fields))
        assert reason in str(caught.value), caught.value


def test_audio_track_picks_the_stream(tmp_path):
    two = tmp_path / "two.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=2",
                    "-f", "lavfi", "-i", "aevalsrc=exprs='sin(900*2*PI*t)|cos(900*2*PI*t)':d=3",
                    "-map", "0", "-map", "1", "-c:a", "flac", str(two)], check=True)
    out = convert(two, tmp_path / "second.flac", {"format": "flac", "audio_track": "1"})
    stream = audio_stream(ffprobe(out))
    assert stream["channels"] == 2 and abs(float(ffprobe(out)["format"]["duration"]) - 3) < 0.05


def test_killed_normalize_pass_is_a_retry_not_a_verdict(clip, tmp_path, monkeypatch):
    killer = tmp_path / "dying-ffmpeg"
    killer.write_text("#!/bin/sh\nkill -KILL $$\n")
    killer.chmod(0o755)
    monkeypatch.setenv("FFMPEG_BINARY", str(killer))
    with pytest.raises(TransientError, match="ffmpeg was killed by SIGKILL"):
        encode.convert(str(clip), probe.probe(str(clip)), io.BytesIO(), str(tmp_path / "log"),
                       options=parse({"normalize": "true", "format": "flac"}))


def test_normalizing_silence_leaves_it_as_it_is(tmp_path):
    silent = make_media(tmp_path / "silent.wav", seconds=1, video=None, audio="anullsrc=r=44100:cl=mono")
    out = convert(silent, tmp_path / "silent.mp3", {"normalize": "true"})
    assert abs(float(ffprobe(out)["format"]["duration"]) - 1) < 0.1
