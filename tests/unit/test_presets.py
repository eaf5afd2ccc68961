"""Presets: the built-in ones parse, a preset's fields are an upload's defaults and explicit fields win,
names and fields of users' presets are checked (the stored ones are exercised in tests/e2e/test_presets.py)."""
from __future__ import annotations

import pytest

from services.common import presets, problems
from services.common.errors import Conflict, InvalidInput
from services.common.options import Options, parse


@pytest.mark.parametrize("name", sorted(presets.BUILTIN))
def test_every_builtin_preset_parses_and_is_described(name):
    options = parse(presets.BUILTIN[name])
    assert options.to_dict()["format"] == presets.BUILTIN[name]["format"]
    assert presets.DESCRIPTIONS[name]
    assert presets.NAME.fullmatch(name)


def test_the_builtin_presets_are_what_the_issue_asks_for():
    assert parse(presets.BUILTIN["podcast"]) == Options("mp3", bitrate=64, channels=1, normalize=True)
    assert parse(presets.BUILTIN["music"]) == Options("mp3", bitrate=320, cover=True)
    assert parse(presets.BUILTIN["voice"]) == Options("opus", bitrate=32, channels=1)
    assert parse(presets.BUILTIN["audiobook"]) == Options("m4a", bitrate=64, channels=1, normalize=True)


def test_no_preset_leaves_the_fields_as_they_are():
    assert presets.resolve({"bitrate": "96k", "callback_url": ""}, "u1") == ({"bitrate": "96k", "callback_url": ""},
                                                                            None)
    assert presets.resolve({"preset": " ", "format": "wav"}, "u1") == ({"format": "wav"}, None)


def test_a_builtin_preset_gives_the_defaults():
    fields, name = presets.resolve({"preset": "Podcast ", "filename": "talk.mp4"}, "u1")
    assert name == "podcast" and "preset" not in fields
    assert parse(fields) == Options("mp3", bitrate=64, channels=1, normalize=True)
    assert fields["filename"] == "talk.mp4"


def test_explicit_fields_override_the_preset():
    fields, _ = presets.resolve({"preset": "podcast", "bitrate": "96k", "normalize": "false"}, "u1")
    assert parse(fields) == Options("mp3", bitrate=96, channels=1)


def test_an_empty_explicit_field_keeps_the_presets_value():
    fields, _ = presets.resolve({"preset": "podcast", "bitrate": "", "channels": " "}, "u1")
    assert parse(fields) == parse(presets.BUILTIN["podcast"])


def test_quality_replaces_the_presets_bitrate_and_the_other_way_round():
    fields, _ = presets.resolve({"preset": "music", "quality": "0"}, "u1")
    assert parse(fields) == Options("mp3", quality=0, cover=True)
    assert "bitrate" not in fields


def test_another_format_drops_what_only_the_presets_format_allows():
    """voice is Opus 32k: FLAC takes no bitrate, so the preset's goes; its mono stays."""
    fields, _ = presets.resolve({"preset": "voice", "format": "flac"}, "u1")
    assert parse(fields) == Options("flac", channels=1)
    fields, _ = presets.resolve({"preset": "music", "format": "opus"}, "u1")
    assert parse(fields) == Options("opus")  # Opus carries no cover
    fields, _ = presets.resolve({"preset": "music", "format": "MP3", "bitrate": "128k"}, "u1")
    assert parse(fields) == Options("mp3", bitrate=128, cover=True)


def test_turning_trim_silence_off_drops_the_presets_threshold():
    preset = {"trim_silence": "true", "silence_db": "-40"}
    assert presets._without_overridden(preset, {"trim_silence": "false"}) == {"trim_silence": "true"}
    assert presets._without_overridden(preset, {"trim_silence": "true"}) == preset


def test_a_malformed_preset_name_is_unknown_without_a_lookup():
    with pytest.raises(InvalidInput) as refused:
        presets.resolve({"preset": "no such/preset"}, "u1")
    assert refused.value.code == "unknown_preset" and "podcast" in refused.value.message


@pytest.mark.parametrize("name", ["", "A", "a b", "x" * 41, "é", "../x", "a.b"])
def test_bad_preset_names_are_refused(name):
    with pytest.raises(InvalidInput) as refused:
        presets.checked_name(name)
    assert refused.value.code == "invalid_preset_name"


def test_good_names_pass_and_builtin_names_cannot_be_taken():
    assert presets.checked_name("my-talks_2") == "my-talks_2" and presets.checked_name("x" * 40)
    with pytest.raises(Conflict) as refused:
        presets.checked_name("podcast")
    assert refused.value.code == "builtin_preset"


def test_preset_fields_are_checked_and_stored_canonical():
    assert presets.checked_fields({"format": "mp3", "bitrate": 96, "channels": 1, "normalize": True,
                                   "cover": False, "title": None}) == {
        "format": "mp3", "bitrate": "96k", "channels": "1", "normalize": "true"}
    assert parse(presets.checked_fields({"start": "1:30", "end": 100.5})) == Options(start=90.0, end=100.5)


@pytest.mark.parametrize("body, named", [
    ({"bitrate": "999k"}, "bitrate"), ({"preset": "podcast"}, "preset"),
    ({"callback_url": "https://x"}, "callback_url"),
    ({"channels": [1]}, "channels"), ({"quality": 2, "bitrate": "128k"}, "quality"), ({"format": "ogg"}, "format"),
])
def test_bad_preset_fields_are_refused_with_the_field_named(body, named):
    with pytest.raises(InvalidInput) as refused:
        presets.checked_fields(body)
    assert refused.value.code == "invalid_option" and named in refused.value.message


def test_metric_labels_are_bounded():
    assert [presets.metric_label(n) for n in (None, "podcast", "my-own", "x" * 40)] == [
        "none", "podcast", "custom", "custom"]


def test_the_preset_codes_are_documented():
    for code in ("unknown_preset", "invalid_preset_name", "builtin_preset", "too_many_presets"):
        assert code in problems.CODES
