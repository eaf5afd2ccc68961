"""The output options: parsing every field, every bad value, the canonical form, the command's parts."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.common import job_view, jobs
from services.common.jobs import Job
from services.common.options import FORMATS, OptionError, Options, parse
from services.converter import command
from services.converter.plan import Plan, Target, copies_audio
from services.converter.probe import AudioTrack, MediaInfo


def test_no_fields_is_todays_mp3():
    assert parse({}) == Options() and parse({}).to_dict() == {"format": "mp3"}
    assert not Options().changes_audio() and Options().used() == []


def test_every_field_read_and_canonical():
    options = parse({"format": " M4A ", "bitrate": "256K", "sample_rate": "48000", "channels": "1",
                     "start": "00:01:02.5", "end": "100", "normalize": "yes", "audio_track": "2",
                     "title": "  Live  ", "artist": "Ärtist 日本", "album": "A", "cover": "on",
                     "filename": "ignored.mp4", "filetype": "video/mp4"})
    assert options == Options("m4a", 256, None, 48000, 1, 62.5, 100.0, True, 2, "Live", "Ärtist 日本", "A", True)
    stored = options.to_dict()
    assert stored == {"format": "m4a", "bitrate": "256k", "sample_rate": 48000, "channels": 1, "start": 62.5,
                      "end": 100.0, "normalize": True, "audio_track": 2, "title": "Live", "artist": "Ärtist 日本",
                      "album": "A", "cover": True}
    assert Options.from_dict(stored) == options and Options.from_dict(None) == Options()
    assert options.used() == ["format", "bitrate", "sample_rate", "channels", "start", "end", "normalize",
                              "audio_track", "title", "artist", "album", "cover"]


def test_canonical_form_is_one_for_equivalent_inputs():
    """The reuse key needs one form: defaults spelled out and written differently all look the same."""
    same = [{}, {"format": "mp3"}, {"audio_track": "0", "normalize": "false", "cover": "0", "title": " "}]
    assert {repr(parse(fields).to_dict()) for fields in same} == {"{'format': 'mp3'}"}
    assert parse({"bitrate": "320"}).to_dict() == parse({"bitrate": "320k"}).to_dict()
    assert (parse({"start": "90"}).to_dict() == parse({"start": "1:30"}).to_dict()
            == parse({"start": "00:01:30.000"}).to_dict())
    assert parse({"quality": "2"}).to_dict() == {"format": "mp3", "quality": 2}


@pytest.mark.parametrize("fields, field, allowed", [
    ({"format": "ogg"}, "format", "mp3, m4a, opus, flac, wav"),
    ({"format": ""}, "format", None),  # empty = default: accepted (checked below)
    ({"bitrate": "100k"}, "bitrate", "32k, 40k"),
    ({"bitrate": "321k"}, "bitrate", "320k"),
    ({"bitrate": "-128k"}, "bitrate", None),
    ({"bitrate": "128kbps"}, "bitrate", None),
    ({"format": "m4a", "bitrate": "16k"}, "bitrate", "32k to 320k"),
    ({"format": "opus", "bitrate": "320k"}, "bitrate", "16k to 256k"),
    ({"format": "flac", "bitrate": "320k"}, "bitrate", "lossless"),
    ({"format": "wav", "bitrate": "128k"}, "bitrate", "lossless"),
    ({"quality": "10"}, "quality", "0 (best) to 9"),
    ({"quality": "2.5"}, "quality", None),
    ({"quality": "2", "bitrate": "128k"}, "quality", "not both"),
    ({"format": "opus", "quality": "2"}, "quality", "mp3 only"),
    ({"sample_rate": "44000"}, "sample_rate", "44100"),
    ({"sample_rate": "96000"}, "sample_rate", "48000"),
    ({"format": "opus", "sample_rate": "44100"}, "sample_rate", "8000, 12000, 16000, 24000, 48000"),
    ({"sample_rate": "22050", "bitrate": "320k"}, "bitrate", "at most 160k"),
    ({"sample_rate": "11025", "bitrate": "96k"}, "bitrate", "at most 64k"),
    ({"channels": "6"}, "channels", "1 (mono) or 2"),
    ({"channels": "0"}, "channels", None),
    ({"start": "abc"}, "start", "HH:MM:SS"),
    ({"start": "-1"}, "start", None),
    ({"start": "nan"}, "start", None),
    ({"start": "1e3"}, "start", None),
    ({"start": "00:61:00"}, "start", None),
    ({"start": "00:00:75"}, "start", None),
    ({"start": "1.2345"}, "start", None),
    ({"end": "99999"}, "end", "21600"),
    ({"start": "10", "end": "5"}, "end", "later than start"),
    ({"start": "5", "end": "5"}, "end", None),
    ({"end": "0"}, "end", None),
    ({"normalize": "maybe"}, "normalize", "true or false"),
    ({"cover": "2"}, "cover", None),
    ({"format": "opus", "cover": "true"}, "cover", "mp3, m4a, flac"),
    ({"format": "wav", "cover": "true"}, "cover", None),
    ({"audio_track": "-1"}, "audio_track", "from 0"),
    ({"audio_track": "64"}, "audio_track", None),
    ({"title": "x" * 201}, "title", "200 characters"),
    ({"artist": "line\nbreak"}, "artist", "control characters"),
    ({"album": "nul\x00"}, "album", None),
])
def test_bad_values_name_their_field_and_range(fields, field, allowed):
    if allowed is None and fields == {"format": ""}:
        assert parse(fields).format == "mp3"
        return
    with pytest.raises(OptionError) as caught:
        parse(fields)
    assert caught.value.field == field
    if allowed:
        assert allowed in caught.value.message, caught.value.message


def test_limits_follow_max_media_seconds(monkeypatch):
    monkeypatch.setenv("MAX_MEDIA_SECONDS", "60")
    assert parse({"end": "60"}).end == 60
    with pytest.raises(OptionError, match="from 0 to 60 s"):
        parse({"end": "61"})


def test_title_of_200_characters_and_valid_extremes():
    assert parse({"title": "é" * 200}).title == "é" * 200
    assert parse({"bitrate": "32k"}).bitrate == 32 and parse({"quality": "0"}).quality == 0
    assert parse({"format": "opus", "bitrate": "16k", "sample_rate": "12000"}).sample_rate == 12000
    assert parse({"start": "5:59:59.999"}).start == 21599.999


def test_job_file_name_type_and_view_follow_the_format():
    for name, spec in FORMATS.items():
        job = Job("j", "u", "v", filename="My clip.final.mp4", options={"format": name})
        assert jobs.result_name(job) == f"My clip.final.{spec.extension}" and jobs.media_type(job) == spec.media_type
        assert job_view.view(job)["options"] == {"format": name}
    old = Job("j", "u", "v", filename="x.mp4")  # stored before options existed
    assert jobs.result_name(old) == "x.mp3" and jobs.media_type(old) == "audio/mpeg"
    assert job_view.view(old)["options"] == {}
    assert {s.media_type for s in FORMATS.values()} == {"audio/mpeg", "audio/mp4", "audio/ogg", "audio/flac",
                                                       "audio/wav"}


# ---------------------------------------------------------------- each option's share of the command

STEREO = AudioTrack("aac", 10.0, 44100, 2)


def test_option_functions():
    assert command.trim_input(parse({})) == {} and command.trim_input(parse({"start": "1.5"})) == {"ss": "1.500"}
    assert command.trim_output(parse({"start": "1.5", "end": "4"})) == {"t": "2.5"}
    assert command.bitrate_args(parse({})) == {"audio_bitrate": "192k"}
    assert command.bitrate_args(parse({"format": "opus", "bitrate": "64k"})) == {"audio_bitrate": "64k", "vbr": "off"}
    assert command.bitrate_args(parse({"quality": "3"})) == {}
    assert command.quality_args(parse({"quality": "3"})) == {"q:a": 3}
    assert command.bitrate_args(parse({"format": "flac"})) == {}
    assert command.sample_rate_args(parse({}), STEREO) == {}
    assert command.sample_rate_args(parse({"sample_rate": "8000"}), STEREO) == {"ar": 8000}
    # loudnorm (the dynamic mode) runs at 192 kHz: the source's rate is set back explicitly
    assert command.sample_rate_args(parse({"normalize": "1"}), STEREO) == {"ar": 44100}
    assert command.sample_rate_args(parse({"normalize": "1", "format": "opus"}), STEREO) == {"ar": 48000}
    # LAME would quietly lower 320k to 160k at 22050 Hz: the rate goes up instead
    assert command.sample_rate_args(parse({"bitrate": "320k"}), AudioTrack("aac", 1, 22050, 1)) == {"ar": 44100}
    assert command.channels_args(parse({}), AudioTrack("ac3", 1, 48000, 6)) == {"ac": 2}
    assert command.channels_args(parse({}), STEREO) == {}
    assert command.channels_args(parse({"channels": "1"}), STEREO) == {"ac": 1}
    assert command.tag_args(parse({"artist": "A"}), "clip") == {"metadata:g:0": "title=clip",
                                                                "metadata:g:1": "artist=A"}
    assert command.normalize_filter(parse({}), None) is None


def test_normalisation_is_one_gain_when_loudnorms_linear_mode_would_be():
    measured = {"input_i": "-23.00", "input_tp": "-9.00", "input_lra": "6.00", "input_thresh": "-33.00"}
    assert command.normalize_filter(parse({"normalize": "1"}), measured) == ("volume", {"volume": "7.00dB"})
    too_loud = dict(measured, input_tp="-7.00")  # +7 dB would put the true peak at 0 dBTP: over -1.5
    wide = dict(measured, input_lra="14.00")  # a range over the target's: loudnorm compresses it
    for dynamic in (too_loud, wide):  # loudnorm measures first (its target_offset), then applies
        assert command.normalize_filter(parse({"normalize": "1"}), dynamic) == (
            "loudnorm", {**command.LOUDNESS, "print_format": "json"})
        name, args = command.normalize_filter(parse({"normalize": "1"}), dict(dynamic, target_offset="0.4"))
        assert name == "loudnorm" and args["measured_I"] == "-23.00" and args["offset"] == "0.4"


def test_stream_copy_only_when_nothing_changes_the_audio():
    mp3 = MediaInfo(10.0, "mp3", 1, 0, 10.0, [AudioTrack("mp3", 10.0, 44100, 2)])
    plan = Plan("in", "pipe:1", parse({"title": "t", "artist": "a"}), mp3)
    assert copies_audio(plan)  # tags do not touch the audio
    for changed in ({"bitrate": "128k"}, {"quality": "2"}, {"sample_rate": "22050"}, {"channels": "1"},
                    {"start": "1"}, {"end": "5"}, {"normalize": "true"}, {"format": "m4a"}):
        assert not copies_audio(Plan("in", "pipe:1", parse(changed), mp3)), changed
    aac = MediaInfo(10.0, "aac", 1, 0, 10.0, [AudioTrack("aac", 10.0, 44100, 2)])
    assert copies_audio(Plan("in", "x.m4a", parse({"format": "m4a"}), aac))
    assert command.build(Plan("in", "x.m4a", parse({"format": "m4a"}), aac)).count("copy") == 1


def test_only_ascii_digits_and_no_huge_numbers():
    for fields in ({"bitrate": "١٢٨k"}, {"quality": "٣"}, {"start": "١٢"}, {"channels": "²"}, {"start": "9" * 400},
                   {"audio_track": "1" * 100}):
        with pytest.raises(OptionError):
            parse(fields)


def test_the_meter_of_unfiltered_audio_has_a_filtergraph_of_its_own():
    """A plain conversion's meter is its output's own simple filtergraph (-af: ffmpeg gives it a thread of
    its own); audio that other filters shape is split for the meter in the one complex graph."""
    video = MediaInfo(10.0, "h264", 1, 1, 10.0, [AudioTrack("aac", 10.0, 48000, 2)])
    meter = SimpleNamespace(rate=100, readings_fd=7, pcm_fd=8)
    plain = command.build(Plan("in", "pipe:1", parse({}), video, targets=[Target(0, parse({}), meter=meter)]))
    assert "-filter_complex" not in plain
    graph = plain[plain.index("-af") + 1]
    assert graph.startswith("atrim=duration=") and "ebur128=peak=true:metadata=1," in graph
    assert graph.endswith("ametadata=mode=print:file=pipe\\\\:7") and plain.count("-map") == 2
    gained = parse({"normalize": "1"})
    measured = {"input_i": "-23.00", "input_tp": "-9.00", "input_lra": "6.00", "input_thresh": "-33.00"}
    shaped = command.build(Plan("in", "pipe:1", gained, video, loudness=measured,
                                targets=[Target(0, gained, meter=meter)]))
    assert "-af" not in shaped
    complex_graph = shaped[shaped.index("-filter_complex") + 1]
    assert "asplit" in complex_graph and "volume" in complex_graph and "ebur128" in complex_graph
