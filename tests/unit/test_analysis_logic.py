"""The pure logic of the converter's analysis: waveform pixels and their merging, the readers of what
ebur128 and silencedetect print, and trim_silence's filters (real ffmpeg runs are in
tests/integration/test_analysis_media.py)."""
from __future__ import annotations

import json

import pytest

from services.common.jobs import LOUDNESS_FIELDS
from services.common.messaging import PermanentError
from services.common.options import parse
from services.converter import analysis, command, encode, silence


def u8(*values: int) -> bytes:
    return bytes(value + 128 for value in values)


def test_pixels_are_min_max_pairs_with_the_partial_last_one():
    peaks = analysis.Peaks(samples_per_pixel=3)
    peaks.write(u8(0, 5, -7, 1))  # a pixel split across writes
    peaks.write(u8(2, -1, 127, -128))
    peaks.finish()
    assert peaks.data == [-7, 5, -1, 2, -128, 127]
    document = json.loads(analysis.waveform_json(peaks, 8000))
    assert document == {"version": 2, "channels": 1, "sample_rate": 8000, "samples_per_pixel": 3, "bits": 8,
                        "length": 3, "data": [-7, 5, -1, 2, -128, 127]}


def test_pixels_merge_in_pairs_past_the_limit_and_still_cover_everything():
    peaks = analysis.Peaks(samples_per_pixel=2, max_pixels=4)
    ramp = list(range(-50, 50))  # 100 samples
    peaks.write(u8(*ramp))
    peaks.finish()
    pixels = len(peaks.data) // 2
    assert pixels <= 4 and peaks.samples_per_pixel in (32, 64)
    assert (pixels - 1) * peaks.samples_per_pixel < 100 <= pixels * peaks.samples_per_pixel
    assert peaks.data[0] == -50 and peaks.data[-1] == 49  # a min of mins, a max of maxes
    firsts = peaks.data[::2]
    assert firsts == sorted(firsts)


SUMMARY = """[Parsed_ebur128_0 @ 0x5] Summary:

  Integrated loudness:
    I:         {i} LUFS
    Threshold: -33.0 LUFS

  Loudness range:
    LRA:         {lra} LU
    Threshold: -36.2 LUFS
    LRA low:   -18.9 LUFS
    LRA high:  -14.3 LUFS

  True peak:
    Peak:      {peak} dBFS
"""


def test_ebur128_summary_read_and_silence_as_none():
    assert analysis.parse_ebur128("noise " + SUMMARY.format(i="-14.64", lra="4.6", peak="-13.46")) == {
        "integrated_lufs": -14.6, "range_lu": 4.6, "true_peak_dbtp": -13.5}
    assert analysis.parse_ebur128(SUMMARY.format(i="-70.0", lra="0.0", peak="-inf")) == dict.fromkeys(LOUDNESS_FIELDS)
    assert analysis.parse_ebur128(SUMMARY.format(i="-70.0", lra="0.0", peak="-80.2"))["true_peak_dbtp"] == -80.2
    with pytest.raises(PermanentError):
        analysis.parse_ebur128("Invalid data found when processing input")


READINGS = """frame:{n}    pts:{n}00    pts_time:{n}
lavfi.r128.M=-20.1
lavfi.r128.I={i}
lavfi.r128.LRA={lra}
lavfi.r128.true_peaks_ch0={left}
lavfi.r128.true_peaks_ch1={right}
lavfi.r128.true_peak={right}
"""


def test_ebur128_readings_of_the_last_frame_count_with_lines_cut_between_blocks():
    meter = analysis.Meter(48000)
    printed = (READINGS.format(n=0, i="-30.000", lra="1.000", left="0.9", right="0.9")
               + READINGS.format(n=1, i="-14.640", lra="4.600", left="0.150", right="0.211")).encode()
    for start in range(0, len(printed), 7):  # the pipe hands over blocks of any size
        meter._reading(printed[start:start + 7])
    assert analysis.parse_readings([*meter.readings, meter.partial]) == {
        "integrated_lufs": -14.6, "range_lu": 4.6, "true_peak_dbtp": -13.5}  # 20 log10(0.211), the louder channel


def test_ebur128_readings_of_silence_and_of_nothing_are_none():
    silent = READINGS.format(n=3, i="-70.000", lra="0.000", left="0.000", right="0.000").splitlines()
    assert analysis.parse_readings(silent) == dict.fromkeys(LOUDNESS_FIELDS)
    assert analysis.parse_readings([]) == dict.fromkeys(LOUDNESS_FIELDS)  # under one 100 ms reading


def printed(tmp_path, *lines: str) -> str:
    path = tmp_path / "pass1.log"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def detected(kind: str, at: float) -> str:
    return f"[silencedetect @ 0x1] silence_{kind}: {at:g}" + (" | silence_duration: 1" if kind == "end" else "")


def test_audible_part_from_the_lead_s_end_to_the_tail_s_start(tmp_path):
    log = printed(tmp_path, detected("start", 0), detected("end", 2.00002), detected("start", 5),
                  detected("end", 7), detected("start", 10), "size=N/A time=00:00:07.90 bitrate=N/A\r"
                  "size=N/A time=00:00:12.00 bitrate=N/A", detected("end", 12))
    start, end = silence.audible_part(log)
    assert start == pytest.approx(2.0, abs=0.001) and end == pytest.approx(10, abs=0.001)


def test_audible_part_keeps_an_end_that_sounds_and_a_middle_pause(tmp_path):
    log = printed(tmp_path, detected("start", 3), detected("end", 4.5), "size=N/A time=00:00:09.00 bitrate=N/A")
    assert silence.audible_part(log) == (0.0, None)
    assert silence.audible_part(printed(tmp_path, "size=N/A time=00:00:09.00")) == (0.0, None)


def test_audible_part_of_silence_is_none_and_without_stats_the_tail_is_kept(tmp_path):
    assert silence.audible_part(printed(tmp_path, detected("start", 0), "time=00:01:00.00", detected("end", 60))) \
        is None
    assert silence.audible_part(printed(tmp_path, detected("start", 0), detected("end", 1), detected("start", 5),
                                        detected("end", 6))) == (pytest.approx(1, abs=0.001), None)


def test_audible_part_widens_by_what_six_digits_lose(tmp_path):
    log = printed(tmp_path, detected("start", 9000.04), "time=03:00:00.00", detected("end", 10800))
    start, end = silence.audible_part(log)
    assert start == 0 and end == pytest.approx(9000.14, abs=1e-6)  # past 10000 s the digits go to 0.1 s


def test_silence_filters_detect_then_cut():
    assert command.silence_filters(parse({}), None) == []
    assert command.silence_filters(parse({"trim_silence": "true"}), None) == [
        ("silencedetect", {"noise": "-50dB", "d": command.MIN_SILENCE_SECONDS})]
    assert command.silence_filters(parse({"trim_silence": "true", "silence_db": "-32.5"}), None)[0][1]["noise"] == \
        "-32.5dB"
    assert command.silence_filters(parse({"trim_silence": "true"}), (1.5, 4.25)) == [
        ("atrim", {"start": "1.500000", "end": "4.250000"}), ("asetpts", {"expr": "PTS-STARTPTS"})]
    assert command.silence_filters(parse({"trim_silence": "true"}), (0.0, None))[0] == ("atrim", {"start": "0.000000"})


def test_kept_seconds():
    assert encode.kept_seconds(None, 7) == 7
    assert encode.kept_seconds((2, 5), 7) == 3
    assert encode.kept_seconds((2, None), 7) == 5
    assert encode.kept_seconds((2, 9), 7) == 5


def test_pixels_do_not_depend_on_how_the_pipe_cuts_the_samples():
    """However ffmpeg's pipe splits the PCM (a block may cross several merges), each pixel is the min and
    max of its own samples_per_pixel samples, the last one partial."""
    samples = bytes((n * 37 + n // 5) % 256 for n in range(5000))
    results = []
    for sizes in ([5000], [1] * 5000, [7, 999, 3, 2048, 1943], [4999, 1]):
        peaks = analysis.Peaks(samples_per_pixel=3, max_pixels=10)
        at = 0
        for size in sizes:
            peaks.write(samples[at:at + size])
            at += size
        peaks.finish()
        results.append((peaks.samples_per_pixel, peaks.data))
    assert all(result == results[0] for result in results)
    per_pixel, data = results[0]
    assert per_pixel == 3 * 2 ** 8 and len(data) == 2 * 7  # 5000 samples in 768s: 6 whole pixels and a partial one
    expected = [value - 128 for at in range(0, 5000, per_pixel)
                for value in (min(samples[at:at + per_pixel]), max(samples[at:at + per_pixel]))]
    assert data == expected
