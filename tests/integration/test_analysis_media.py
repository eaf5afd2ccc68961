"""The converter's audio analysis and silence trimming on real files made by ffmpeg, checked by readers
not our own: pyloudnorm (an independent EBU R128 meter) for the loudness, ffprobe for lengths, numpy
for the samples a waveform must follow."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy
import pyloudnorm
import pytest

from services.common.jobs import LOUDNESS_FIELDS
from services.common.messaging import PermanentError, TransientError
from services.common.options import parse
from services.converter import analysis, encode, plan, probe
from devkit.media import duration_of, make_media

RATE = 48000


def lavfi_audio(path: Path, source: str, seconds: float, channels: int = 1) -> Path:
    """An audio file of `seconds` from a lavfi expression (FLAC keeps the samples exact, WAV too)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds),
                    "-ac", str(channels), "-ar", str(RATE), str(path)], check=True)
    return path


def tone(amplitude: float, start: float | None = None, end: float | None = None, frequency: int = 1000) -> str:
    """A sine of peak `amplitude` (1 = 0 dBFS), sounding from `start` to `end` only when they are given."""
    gate = f"*between(t\\,{start}\\,{end})" if start is not None else ""
    return f"{amplitude}*sin({frequency}*2*PI*t){gate}"


def aeval(*terms: str, channels: int = 1) -> str:
    """The sum of `terms`, the same in each of `channels`."""
    return f"aevalsrc=exprs='{'|'.join(['+'.join(terms)] * channels)}':s={RATE}"


def samples(path: Path) -> numpy.ndarray:
    """The file's samples as float, one column per channel, decoded by ffmpeg (frames × channels)."""
    channels = int(json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=channels", "-of", "json",
         str(path)], check=True, capture_output=True, text=True).stdout)["streams"][0]["channels"])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ar", str(RATE), "-f", "f32le",
                          "-c:a", "pcm_f32le", "-"], check=True, capture_output=True).stdout
    return numpy.frombuffer(raw, dtype="<f4").reshape(-1, channels).astype(numpy.float64)


def pyloudnorm_lufs(path: Path) -> float:
    return pyloudnorm.Meter(RATE).integrated_loudness(samples(path))


# ---------------------------------------------------------------- analyse: loudness


@pytest.fixture(scope="module")
def signals(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("signals")
    return {
        # A 1 kHz sine at -20 dBFS peak in both channels: -20 - 3.01 (its RMS) + 3.01 (two channels) ≈ -20 LUFS.
        "tone": lavfi_audio(folder / "tone.flac", aeval(tone(0.1), channels=2), 8, channels=2),
        # Speech-like: pink noise in syllables (4 a second), louder and quieter phrases over 8 s.
        "speech": lavfi_audio(folder / "speech.flac", f"anoisesrc=color=pink:amplitude=0.3:r={RATE}:seed=7,"
                                                      "volume='(0.05+0.95*abs(sin(PI*t/8)))*(0.3+0.7*abs(sin(4*PI*t)))'"
                                                      ":eval=frame", 16),
        # The devkit's video: AAC in MP4, the test picture along.
        "clip": make_media(folder / "clip.mp4", seconds=6, audio="sine=frequency=700:sample_rate=48000"),
        "silence": lavfi_audio(folder / "silence.flac", f"anullsrc=r={RATE}:cl=stereo", 3),
    }


@pytest.mark.parametrize("name", ["tone", "speech", "clip"])
def test_loudness_agrees_with_pyloudnorm(signals, name, tmp_path):
    measured, _ = analysis.analyse(str(signals[name]), str(tmp_path))
    reference = pyloudnorm_lufs(signals[name])
    print(f"\n{name}: ours {measured}, pyloudnorm {reference:.2f} LUFS")
    assert tuple(measured) == LOUDNESS_FIELDS
    assert abs(measured["integrated_lufs"] - reference) <= 0.5, (measured, reference)
    if name == "tone":
        assert measured["integrated_lufs"] == pytest.approx(-20, abs=0.3)
        assert measured["range_lu"] == pytest.approx(0, abs=0.2)  # a steady tone has no loudness range
    if name == "speech":
        assert measured["range_lu"] > 3, measured  # the level swings: a range to report
    # True peak: at least the sample peak, and not far above it (inter-sample overs are a few dB at most).
    sample_peak = 20 * numpy.log10(numpy.abs(samples(signals[name])).max())
    assert sample_peak - 0.2 <= measured["true_peak_dbtp"] <= sample_peak + 3, (measured, sample_peak)


def test_silence_has_no_loudness(signals, tmp_path):
    assert analysis.analyse(str(signals["silence"]), str(tmp_path))[0] == dict.fromkeys(LOUDNESS_FIELDS)


def test_analysis_of_what_is_no_audio_is_the_media_s_fault(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all" * 100)
    with pytest.raises(PermanentError):
        analysis.analyse(str(junk), str(tmp_path))


def test_a_killed_measurement_is_a_retry_not_a_verdict(signals, tmp_path, monkeypatch):
    killer = tmp_path / "dying-ffmpeg"
    killer.write_text("#!/bin/sh\nkill -KILL $$\n")
    killer.chmod(0o755)
    monkeypatch.setenv("FFMPEG_BINARY", str(killer))
    with pytest.raises(TransientError, match="ffmpeg was killed by SIGKILL"):
        analysis.analyse(str(signals["tone"]), str(tmp_path))


# ---------------------------------------------------------------- analyse: waveform


def waveform(path: Path, work_dir: Path) -> dict:
    document = json.loads(analysis.analyse(str(path), str(work_dir))[1])
    assert set(document) == {"version", "channels", "sample_rate", "samples_per_pixel", "bits", "length", "data"}
    assert (document["version"], document["channels"], document["bits"]) == (2, 1, 8)
    assert len(document["data"]) == 2 * document["length"]
    assert all(-128 <= value <= 127 for value in document["data"])
    assert all(low <= high for low, high in zip(document["data"][::2], document["data"][1::2], strict=True))
    return document


def test_waveform_covers_the_audio_and_follows_its_level(tmp_path):
    # 3 s quiet (-26 dBFS), 3 s loud (-2 dBFS), as an MP3 the way a result is stored.
    source = lavfi_audio(tmp_path / "steps.flac", aeval(tone(0.05, 0, 3), tone(0.8, 3, 6, 300)), 6)
    mp3 = tmp_path / "steps.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-b:a", "128k", str(mp3)], check=True)
    document = waveform(mp3, tmp_path)
    rate, per_pixel, length = document["sample_rate"], document["samples_per_pixel"], document["length"]
    assert rate == 48000
    # What a decoder plays (ffmpeg skips the encoder's delay and padding the LAME header names) within
    # one pixel; ffprobe's duration of an MP3 is the container's estimate, tens of ms longer.
    assert abs(length * per_pixel - len(samples(mp3))) <= per_pixel, "one pixel at most"
    assert abs(length * per_pixel / rate - duration_of(mp3)) <= 0.05
    data, pixel = document["data"], per_pixel / rate  # seconds a pixel

    def peak(start: float, end: float) -> int:
        values = data[2 * round(start / pixel):2 * round(end / pixel)]
        return max(max(values), -min(values))
    quiet, loud = peak(0.2, 2.8), peak(3.2, 5.8)  # clear of the step, where the MP3 smears it
    print(f"\n{length} pixels of {per_pixel} samples; quiet peak {quiet}, loud peak {loud}")
    assert 4 <= quiet <= 9 and 95 <= loud <= 104, (quiet, loud)  # 0.05 and 0.8 of 128


def test_waveform_of_a_long_file_stays_small(tmp_path):
    """Twenty minutes: pixels are merged in pairs, the length still matches the audio."""
    long = lavfi_audio(tmp_path / "long.flac", f"sine=frequency=200:sample_rate={RATE}", 1200, channels=1)
    document = waveform(long, tmp_path)
    assert analysis.MAX_PIXELS // 2 < document["length"] <= analysis.MAX_PIXELS
    seconds = document["length"] * document["samples_per_pixel"] / document["sample_rate"]
    assert abs(seconds - 1200) <= document["samples_per_pixel"] / RATE
    # The sine source's amplitude is 1/8: 16 of 128, in every pixel.
    assert set(document["data"][2:-2:2]) == {-16} and set(document["data"][3:-2:2]) <= {15, 16}  # 8-bit rounding


def test_waveform_of_silence_is_flat(signals, tmp_path):
    document = waveform(signals["silence"], tmp_path)
    assert document["length"] == -(-3 * RATE // analysis.BASE_SAMPLES_PER_PIXEL)
    assert set(document["data"]) == {0}


# ---------------------------------------------------------------- measured while ffmpeg encodes


def metered(source: Path, work: Path, fields: dict) -> list[tuple[Path, dict, dict]]:
    """The conversion as the converter runs it, every result measured in that same ffmpeg run
    (analysis.attach_meters): (result, loudness, waveform document) per result."""
    info = probe.probe(str(source))
    targets = plan.targets_of(info, [parse(fields)], "out")
    for n, target in enumerate(targets):
        target.path = str(work / f"out-{n}.{target.options.spec.extension}")
    analysis.attach_meters(str(source), info, targets)
    assert all(target.meter is not None for target in targets)
    encode.convert_targets(str(source), info, targets, str(work), info.duration or 0)
    return [(Path(t.path), *(lambda pair: (pair[0], json.loads(pair[1])))(t.meter.result())) for t in targets]


@pytest.mark.parametrize("fields", [{}, {"format": "opus", "bitrate": "64k", "channels": "1"},
                                    {"format": "m4a", "sample_rate": "22050"}], ids=["mp3", "opus-mono", "m4a-22k"])
@pytest.mark.parametrize("name", ["tone", "speech", "clip"])
def test_a_result_measured_while_encoded_agrees_with_pyloudnorm_on_the_file(signals, name, fields, tmp_path):
    """What ebur128 hears in the run (the audio as its encoder gets it: channels, rate) is what the
    file holds, to within what the lossy encoder changes."""
    ((result, measured, document),) = metered(signals[name], tmp_path, fields)
    reference = pyloudnorm_lufs(result)
    print(f"\n{name} {fields}: ours {measured}, pyloudnorm on the result {reference:.2f} LUFS")
    assert abs(measured["integrated_lufs"] - reference) <= 0.5, (measured, reference)
    sample_peak = 20 * numpy.log10(numpy.abs(samples(result)).max())
    assert sample_peak - 0.6 <= measured["true_peak_dbtp"] <= sample_peak + 3, (measured, sample_peak)
    rate, per_pixel = document["sample_rate"], document["samples_per_pixel"]
    # the encoder's delay and padding, which a player of a stream without a LAME header also plays: < 3 pixels
    assert abs(document["length"] * per_pixel / rate - duration_of(result)) <= 3 * per_pixel / rate + 0.03


def test_measured_while_encoded_follows_the_level_and_the_cut(tmp_path):
    source = lavfi_audio(tmp_path / "steps.flac", aeval(tone(0.05, 0, 3), tone(0.8, 3, 6, 300)), 6)
    ((_, quiet_part, document),) = metered(source, tmp_path, {"end": "2.5"})
    assert quiet_part["integrated_lufs"] == pytest.approx(-26 - 3.01, abs=0.5)  # the loud part is past the end
    assert document["length"] * document["samples_per_pixel"] / document["sample_rate"] == pytest.approx(2.5, abs=0.02)
    assert max(document["data"]) <= 9


def test_silence_measured_while_encoded_has_no_loudness(signals, tmp_path):
    ((_, measured, document),) = metered(signals["silence"], tmp_path, {"format": "opus"})
    assert measured == dict.fromkeys(LOUDNESS_FIELDS) and set(document["data"]) == {0}


def test_a_stream_copy_gets_no_meter(tmp_path):
    mp3 = tmp_path / "already.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine", "-t", "2", str(mp3)], check=True)
    info = probe.probe(str(mp3))
    targets = plan.targets_of(info, [parse({})], "t")
    analysis.attach_meters(str(mp3), info, targets)
    assert targets[0].meter is None  # no decoded audio in its run: analysed from its file afterwards


# ---------------------------------------------------------------- trim_silence


def convert(source: Path, target: Path, fields: dict) -> tuple[float, list[float], list[float]]:
    """The conversion as the converter runs it: the output's length (ffprobe), its progress and its
    reported length."""
    progress, lengths = [], []
    with open(target, "wb") as sink:
        encode.convert(str(source), probe.probe(str(source)), sink, str(target.parent / f"{target.name}.log"),
                       options=parse(fields), on_progress=progress.append, on_length=lengths.append)
    return duration_of(target), progress, lengths


def test_trim_silence_cuts_the_lead_and_the_tail(tmp_path):
    source = lavfi_audio(tmp_path / "padded.wav", aeval(tone(0.3, 2, 5)), 7)  # 2 s silence, 3 s tone, 2 s silence
    seconds, progress, lengths = convert(source, tmp_path / "trimmed.mp3", {"trim_silence": "true"})
    assert seconds == pytest.approx(3, abs=0.08), seconds
    assert lengths and lengths[-1] == pytest.approx(3, abs=0.02)
    assert progress and max(progress) == pytest.approx(7, abs=0.3), "progress counts to the planned 100 %"
    untouched, _, _ = convert(source, tmp_path / "whole.mp3", {})
    assert untouched == pytest.approx(7, abs=0.08)


def test_trim_silence_keeps_pauses_in_the_middle(tmp_path):
    source = lavfi_audio(tmp_path / "pause.flac", aeval(tone(0.3, 1, 3), tone(0.3, 5, 6)), 8)
    seconds, _, _ = convert(source, tmp_path / "pause.flac.out.flac", {"format": "flac", "trim_silence": "true"})
    assert seconds == pytest.approx(5, abs=0.03), seconds  # 1..6: the 2 s pause stays


def test_trim_silence_follows_the_threshold(tmp_path):
    # 1 s at -10 dBFS, then 2 s of a -40 dBFS tone, then 1 s of silence.
    source = lavfi_audio(tmp_path / "fade.flac", aeval(tone(0.316, 0, 1), tone(0.01, 1, 3)), 4)
    below, _, _ = convert(source, tmp_path / "cut.wav", {"format": "wav", "trim_silence": "true", "silence_db": "-30"})
    kept, _, _ = convert(source, tmp_path / "kept.wav", {"format": "wav", "trim_silence": "true", "silence_db": "-50"})
    assert below == pytest.approx(1, abs=0.03), "the -40 dBFS tone is silence at -30"
    assert kept == pytest.approx(3, abs=0.03), "and sound at -50"


def test_trim_silence_with_start_end_and_normalize(tmp_path):
    source = lavfi_audio(tmp_path / "long.flac", aeval(tone(0.05, 3, 7)), 10)
    seconds, progress, _ = convert(source, tmp_path / "both.m4a", {"format": "m4a", "start": "1", "end": "9",
                                                                   "trim_silence": "true", "normalize": "true"})
    assert seconds == pytest.approx(4, abs=0.08), seconds  # 3..7 of the kept 1..9
    assert max(progress) == pytest.approx(8, abs=0.3)
    assert analysis.analyse(str(tmp_path / "both.m4a"), str(tmp_path))[0]["integrated_lufs"] == pytest.approx(
        -16, abs=1)


def test_trim_silence_of_silence_fails_with_its_reason(signals, tmp_path):
    with pytest.raises(PermanentError) as caught:
        encode.convert(str(signals["silence"]), probe.probe(str(signals["silence"])), io.BytesIO(),
                       str(tmp_path / "log"), options=parse({"trim_silence": "true"}))
    assert "below silence_db (-50 dBFS) throughout" in str(caught.value)
