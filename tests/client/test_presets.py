"""Presets from the client: `vid2mp3 presets` (list, show, set, delete), `convert --preset` with options
overriding the preset's, and the SDK's preset calls, against the running stack."""
from __future__ import annotations

import json
import subprocess

import pytest
from vid2mp3 import ApiError, Client, Preset
from vid2mp3.config import UrlStore

BUILTIN = ["podcast", "music", "voice", "audiobook"]


def _audio(path) -> dict:
    probe = ["ffprobe", "-v", "error", "-show_streams", "-select_streams", "a:0", "-of", "json", str(path)]
    return json.loads(subprocess.run(probe, check=True, capture_output=True, text=True).stdout)["streams"][0]


def test_cli_lists_sets_shows_and_deletes_presets(cli):
    assert [p["name"] for p in cli.json("presets")] == BUILTIN
    made = cli.json("presets", "set", "lectures", "--format", "opus", "--bitrate", "48k", "--channels", "1",
                    "--normalize")
    assert made == {"name": "lectures", "builtin": False, "description": None,
                    "fields": {"format": "opus", "bitrate": "48k", "channels": "1", "normalize": "true"}}
    assert cli.json("presets")[-1] == made and cli.json("presets", "show", "lectures") == made
    text = cli.run("presets")
    assert text.returncode == 0 and "lectures" in text.stdout and "built-in" in text.stdout
    assert cli.json("presets", "delete", "lectures") == {"name": "lectures", "deleted": True}
    gone = cli.json("presets", "show", "lectures", expect=5)
    assert gone["error"]["code"] == "not_found"
    refused = cli.json("presets", "set", "podcast", "--bitrate", "96k", expect=5)
    assert refused["error"]["code"] == "builtin_preset"
    bad = cli.json("presets", "set", "mine", "--bitrate", "999k", expect=2)
    assert bad["error"]["code"] == "invalid_option"


def test_convert_with_a_preset_and_an_option_overriding_it(cli, videos, tmp_path):
    results = cli.json("convert", videos[0], "--preset", "podcast", "--bitrate", "96k", "--out", tmp_path)
    assert results[0]["exit_code"] == 0, results
    job = cli.json("show", results[0]["job_id"])
    assert job["preset"] == "podcast"
    assert job["options"] == {"format": "mp3", "bitrate": "96k", "channels": 1, "normalize": True}
    audio = _audio(results[0]["output"])
    assert (audio["codec_name"], audio["channels"], audio["bit_rate"]) == ("mp3", 1, "96000")


def test_no_normalize_turns_a_presets_normalize_off(cli, videos, tmp_path):
    results = cli.json("convert", videos[1], "--preset", "podcast", "--no-normalize", "--out", tmp_path)
    job = cli.json("show", results[0]["job_id"])
    assert job["options"] == {"format": "mp3", "bitrate": "64k", "channels": 1}


def test_an_unknown_preset_is_a_usage_error_and_uploads_nothing(cli, videos):
    refused = cli.json("convert", videos[0], "--preset", "nope", expect=2)
    assert refused[0]["error"]["code"] == "unknown_preset"
    assert cli.json("jobs") == []


@pytest.fixture
def sdk(stack, user, tmp_path) -> Client:
    return Client(stack["gateway"], token=user.token, url_store=UrlStore(tmp_path / "uploads.json"))


def test_sdk_preset_calls(sdk, videos, tmp_path):
    assert [p.name for p in sdk.presets()] == BUILTIN and sdk.preset("voice").builtin
    saved = sdk.save_preset("small", {"format": "opus", "bitrate": "24k", "channels": 1, "cover": False})
    assert saved == Preset("small", False, {"format": "opus", "bitrate": "24k", "channels": "1"})
    job = sdk.wait(sdk.upload(videos[2], preset="small").job_id)
    assert job.done and job.raw["preset"] == "small" and job.options == {"format": "opus", "bitrate": "24k",
                                                                          "channels": 1}
    sdk.delete_preset("small")
    with pytest.raises(ApiError) as gone:
        sdk.preset("small")
    assert gone.value.status == 404
    with pytest.raises(ApiError) as unknown:
        sdk.upload(videos[2], preset="small")
    assert (unknown.value.status, unknown.value.code, unknown.value.exit_code) == (400, "unknown_preset", 2)
