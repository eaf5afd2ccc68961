"""The upper bound of a result's size (services/converter/output_size.py) for every format, from the
output's audio as the command makes it (plan.output_audio) and the seconds ffmpeg may write
(plan.bound_seconds): pure functions, no files."""
from __future__ import annotations

import math

import pytest

from services.common.options import parse
from services.converter import output_limit, plan, probe
from services.converter.output_size import (COVER_MAX_BYTES, FIXED_OVERHEAD, FRAMING_PER_SECOND, RATE_MARGIN, Audio,
                                            megabytes, upper_bound)

STEREO_48K = Audio(48000, 2)
HOUR = 3600


def lossy(kbps: float, seconds: float) -> int:
    """What the bound must be for a lossy output at `kbps`."""
    return math.ceil(seconds * (kbps * 1000 / 8 * RATE_MARGIN + FRAMING_PER_SECOND)) + FIXED_OVERHEAD


def pcm(rate: int, channels: int, sample_bytes: int, seconds: float) -> int:
    return seconds * (rate * channels * sample_bytes + FRAMING_PER_SECOND) + FIXED_OVERHEAD


@pytest.mark.parametrize("fields, audio, kbps", [
    ({"bitrate": "128k"}, STEREO_48K, 128),  # mp3 CBR: its bitrate
    ({}, STEREO_48K, 192),  # mp3 at MP3_BITRATE (192k by default)
    ({"quality": "0"}, Audio(44100, 2), 320),  # VBR: MPEG-1's top bitrate
    ({"quality": "9"}, Audio(22050, 1), 160),  # VBR at MPEG-2 rates: 160k at most
    ({}, Audio(44100, 2, copy=True), 320),  # a copied MP3 may have any bitrate
    ({"format": "m4a", "bitrate": "96k"}, STEREO_48K, 96),
    ({"format": "m4a"}, STEREO_48K, 192),  # m4a's default
    ({"format": "m4a"}, Audio(48000, 6, copy=True), 6 * 48000 * 6 / 1000),  # AAC's ceiling, 6 channels copied
    ({"format": "opus", "bitrate": "64k"}, STEREO_48K, 64),
    ({"format": "opus"}, STEREO_48K, 128),  # opus's default
    ({"format": "opus"}, Audio(48000, 2, copy=True), 512),  # libopus's ceiling per channel
])
def test_lossy_formats_are_bounded_by_their_highest_bitrate(fields, audio, kbps):
    assert upper_bound(parse(fields), audio, HOUR) == lossy(kbps, HOUR)


def test_mp3_bitrate_setting_is_read_as_ffmpeg_reads_it(monkeypatch):
    monkeypatch.setenv("MP3_BITRATE", "128000")
    assert upper_bound(parse({}), STEREO_48K, 60) == lossy(128, 60)
    monkeypatch.setenv("MP3_BITRATE", "256K")
    assert upper_bound(parse({}), STEREO_48K, 60) == lossy(256, 60)


def test_wav_is_its_pcm_and_flac_is_bounded_by_24_bit_pcm():
    assert upper_bound(parse({"format": "wav"}), STEREO_48K, HOUR) == pcm(48000, 2, 2, HOUR)
    assert upper_bound(parse({"format": "wav"}), Audio(8000, 1), 10) == pcm(8000, 1, 2, 10)
    assert upper_bound(parse({"format": "flac"}), STEREO_48K, HOUR) == pcm(48000, 2, 3, HOUR)
    assert upper_bound(parse({"format": "flac"}), Audio(96000, 6, copy=True), 60) == pcm(96000, 6, 3, 60)
    # The case: an hour of 48 kHz stereo as WAV is ~691 MB of samples, whatever the upload's size.
    assert megabytes(upper_bound(parse({"format": "wav"}), STEREO_48K, HOUR)) == "695 MB"


def test_cover_art_and_zero_seconds():
    assert upper_bound(parse({"cover": "true"}), STEREO_48K, 0) == FIXED_OVERHEAD + COVER_MAX_BYTES
    assert upper_bound(parse({"format": "flac", "cover": "true"}), STEREO_48K, 1) == \
        pcm(48000, 2, 3, 1) + COVER_MAX_BYTES


def _info(duration: float | None, rate: int | None = 44100, channels: int | None = 2, codec: str = "aac"):
    track = probe.AudioTrack(codec, duration, rate, channels)
    return probe.MediaInfo(duration, codec, 1, 1, duration, [track])


def test_the_output_audio_follows_the_command():
    def audio(info, fields):
        return plan.output_audio(plan.Plan("in", "pipe:1", parse(fields), info))

    assert audio(_info(60, 44100, 6), {"format": "wav"}) == Audio(44100, 2)  # 5.1 folded to stereo
    assert audio(_info(60, 44100, 2), {"format": "wav", "sample_rate": "8000", "channels": "1"}) == Audio(8000, 1)
    assert audio(_info(60, 44100, 6), {"format": "m4a"}) == Audio(44100, 6, copy=True)  # AAC copied as it is
    assert audio(_info(60, None, None), {"format": "wav"}) == Audio(192000, 8)  # unknown: the highest


def test_seconds_are_the_kept_part_or_what_t_lets_through(monkeypatch):
    monkeypatch.setenv("MAX_MEDIA_SECONDS", "21600")
    assert plan.bound_seconds(_info(600), parse({})) == 600
    assert plan.bound_seconds(_info(600), parse({"start": "100", "end": "160"})) == 60
    assert plan.bound_seconds(_info(600), parse({"start": "590"})) == 10
    assert plan.bound_seconds(_info(None), parse({})) == 21600  # unknown length: ffmpeg's -t
    assert plan.bound_seconds(_info(None), parse({"start": "5", "end": "65"})) == 60


def test_the_allowance_is_the_smallest_limit_and_refuses_what_would_pass_it():
    caps = {output_limit.MAXIMUM: 500_000_000, output_limit.QUOTA: 20_000_000}
    with pytest.raises(Exception) as refused:
        output_limit._allowance(caps, 694_865_536, HOUR)
    assert str(refused.value).startswith("the result would be up to about 695 MB, more than the 20 MB left in your "
                                         "storage quota; delete jobs you no longer need")
    with pytest.raises(Exception) as refused:
        output_limit._allowance({output_limit.MAXIMUM: 300_000_000}, 694_865_536, HOUR)
    assert "more than the 300 MB one result may take (MAX_OUTPUT_BYTES)" in str(refused.value)
    # Room for the guard: twice the prediction, never past the smallest limit.
    assert output_limit._allowance(caps, 1_000_000, 5).limit == 2_000_000
    capped = output_limit._allowance(caps, 15_000_000, 75)
    assert (capped.limit, capped.cause) == (20_000_000, output_limit.QUOTA)
