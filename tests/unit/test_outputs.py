"""Several outputs per job (issue 23): reading `outputs`, the files a job holds, the view of each result, and
which earlier results a new job may share (pure logic: no storage)."""
from __future__ import annotations

import json

import pytest

from services.common import job_view, outputs
from services.common.jobs import Job, Status
from services.common.options import OptionError, Options, parse
from services.common.outputs import requested_outputs

THREE = [{"format": "mp3", "bitrate": "192k"}, {"format": "opus", "bitrate": "64k"}, {"format": "flac"}]


def test_without_outputs_nothing_changes():
    assert requested_outputs({}) == [Options()]
    assert requested_outputs({"format": "opus", "bitrate": "64k"}) == [parse({"format": "opus", "bitrate": "64k"})]
    assert requested_outputs({"outputs": "  "}) == [Options()]
    assert not outputs.asks_for_outputs({"format": "flac"})


def test_three_outputs_in_order_canonical():
    asked = requested_outputs({"outputs": json.dumps(THREE)})
    assert [each.to_dict() for each in asked] == [{"format": "mp3", "bitrate": "192k"},
                                                  {"format": "opus", "bitrate": "64k"}, {"format": "flac"}]


def test_top_level_fields_are_defaults_each_entry_overrides():
    fields = {"normalize": "true", "channels": "1", "title": "Talk", "callback_url": "https://x.example/",
              "outputs": json.dumps([{"format": "mp3"}, {"format": "opus", "channels": 2}, {"title": "Other"}])}
    first, second, third = requested_outputs(fields)
    assert first.to_dict() == {"format": "mp3", "channels": 1, "normalize": True, "title": "Talk"}
    assert second.to_dict() == {"format": "opus", "channels": 2, "normalize": True, "title": "Talk"}
    assert third.title == "Other" and third.channels == 1


def test_a_default_bitrate_another_format_cannot_take_is_left_out_for_it():
    mp3, flac = requested_outputs({"bitrate": "320k", "outputs": json.dumps([{"format": "mp3"}, {"format": "flac"}])})
    assert mp3.bitrate == 320 and flac.to_dict() == {"format": "flac"}
    with pytest.raises(OptionError) as refused:  # given in the entry itself: refused
        requested_outputs({"outputs": json.dumps([{"format": "flac", "bitrate": "320k"}])})
    assert refused.value.field == "outputs[0].bitrate"


def test_values_may_be_json_numbers_and_booleans():
    (only,) = requested_outputs({"outputs": json.dumps([{"format": "mp3", "bitrate": 128, "normalize": True,
                                                          "channels": 1}])})
    assert only.to_dict() == {"format": "mp3", "bitrate": "128k", "channels": 1, "normalize": True}


@pytest.mark.parametrize(("raw", "field"), [
    ('[{"format":"mp3"},{"format":"opus","bitrate":"999k"}]', "outputs[1].bitrate"),
    ('[{"format":"ogg"}]', "outputs[0].format"),
    ('[{"bitrat":"128k"}]', "outputs[0].bitrat"),
    ('[{"format":["mp3"]}]', "outputs[0].format"),
    ('["mp3"]', "outputs[0]"),
    ("[]", "outputs"),
    ('{"format":"mp3"}', "outputs"),
    ("not json", "outputs"),
    (json.dumps([{"format": "mp3"}] * 6), "outputs"),  # MAX_OUTPUTS_PER_JOB is 5 by default
])
def test_bad_outputs_name_the_field(raw, field):
    with pytest.raises(OptionError) as refused:
        requested_outputs({"outputs": raw})
    assert refused.value.field == field


def test_the_limit_is_a_setting(monkeypatch):
    monkeypatch.setenv("MAX_OUTPUTS_PER_JOB", "2")
    assert len(requested_outputs({"outputs": json.dumps(THREE[:2])})) == 2
    with pytest.raises(OptionError):
        requested_outputs({"outputs": json.dumps(THREE)})


# ---------------------------------------------------------------- what a done job holds


def _result(mp3_id: str, output: int, options: dict, waveform: str | None = None, **more) -> dict:
    return {"mp3_id": mp3_id, "output": output, "name": f"talk.{options['format']}", "media_type": "audio/x",
            "size": 1000, "options": options, "audio_seconds": 3.0, "loudness": None, "waveform_id": waveform, **more}


def _done(results: list[dict] | None = None, **fields) -> Job:
    job = Job("j1", owner="u1", video_id="v1", filename="talk.mp4", status=Status.DONE, created=1000.0,
              ended_at=1000.0, **fields)
    if results:
        job.results, job.mp3_id = results, results[0]["mp3_id"]
    return job


def test_an_old_job_has_one_result_from_its_mp3_id():
    job = _done(mp3_id="m1", options={"format": "opus"}, audio_seconds=2.5)
    (result,) = outputs.results_of(job)
    assert result["mp3_id"] == "m1" and result["name"] == "talk.opus" and result["media_type"] == "audio/ogg"
    assert outputs.file_ids(job) == ["m1"] and outputs.served_file(job, "m1") == ("talk.opus", "audio/ogg")
    assert outputs.results_of(_done()) == [] and outputs.file_ids(_done()) == []


def test_every_result_and_waveform_is_a_file_of_the_job():
    job = _done([_result("m1", 0, {"format": "mp3"}, "w1"), _result("m2", 1, {"format": "flac"}, "w2")])
    assert outputs.file_ids(job) == ["m1", "w1", "m2", "w2"]
    assert outputs.served_file(job, "m2") == ("talk.flac", "audio/x")
    assert outputs.served_file(job, "w2") == ("talk.waveform.json", "application/json")
    assert outputs.served_file(job, "elsewhere") is None


def test_the_view_lists_every_result_with_its_links(monkeypatch):
    monkeypatch.setenv("AUTH_DEV_MODE", "1")
    job = _done([_result("m1", 0, {"format": "mp3"}, "w1", loudness={"integrated_lufs": -16.0}),
                 _result("m2", 1, {"format": "flac"})], chapters=[{"title": "A", "start": 0, "end": 1}],
                source_loudness={"integrated_lufs": -23.0})
    shown = job_view.view(job)
    assert shown["mp3_id"] == "m1" and shown["download_url"] == "/download?fid=m1"
    first, second = shown["outputs"]
    assert first["waveform_url"] == "/download?fid=w1" and "/links/" in first["waveform_link"]
    assert first["link"] == shown["link"] and second["link"] != first["link"]
    assert second["format"] == "flac" and second["waveform_url"] is None and second["output"] == 1
    assert shown["chapters"] == [{"title": "A", "start": 0, "end": 1}]
    assert shown["loudness"] == {"output": {"integrated_lufs": -16.0}, "source": {"integrated_lufs": -23.0}}
    assert {"preset", "source_url", "fetch"} <= set(shown)


def test_a_job_not_done_shows_no_outputs():
    job = Job("j2", owner="u1", video_id="v1", status=Status.FETCHING, fetch={"bytes": 10, "total": None},
              source_url="https://example.org/v.mp4")
    shown = job_view.view(job)
    assert shown["outputs"] == [] and shown["loudness"] is None and shown["fetch"] == {"bytes": 10, "total": None}
    assert shown["source_url"] == "https://example.org/v.mp4"


# ---------------------------------------------------------------- reuse per output


def test_every_output_made_before_is_shared_renumbered():
    mp3, opus, flac = {"format": "mp3"}, {"format": "opus"}, {"format": "flac"}
    earlier = _done([_result("m1", 0, mp3, "w1"), _result("m2", 1, opus)])
    other = _done([_result("m3", 0, flac)])
    shared = outputs.shared_results([flac, mp3], [earlier, other])
    assert [(r["mp3_id"], r["output"]) for r in shared] == [("m3", 0), ("m1", 1)]


def test_a_partial_match_shares_nothing():
    earlier = _done([_result("m1", 0, {"format": "mp3"})])
    assert outputs.shared_results([{"format": "mp3"}, {"format": "flac"}], [earlier]) is None
    assert outputs.shared_results([{"format": "mp3", "bitrate": "128k"}], [earlier]) is None


def test_an_old_job_is_shared_by_its_options_and_chapters_go_together():
    old = _done(mp3_id="m0", options={"format": "mp3"})
    assert [r["mp3_id"] for r in outputs.shared_results([{"format": "mp3"}], [old])] == ["m0"]
    split = {"format": "mp3", "split": "chapters"}
    chaptered = _done([_result("c1", 0, split, chapter={"index": 1}), _result("c2", 0, split, chapter={"index": 2})])
    assert [r["mp3_id"] for r in outputs.shared_results([split], [chaptered])] == ["c1", "c2"]


def test_the_email_lists_every_result_with_its_size_and_link(monkeypatch):
    from services.notification import mailer

    monkeypatch.setenv("AUTH_DEV_MODE", "1")
    job = _done([_result("m1", 0, {"format": "mp3"}), dict(_result("m2", 1, {"format": "flac"}), size=2_500_000)],
                owner_email="a@example.com")
    text = mailer.compose(job, Status.DONE).get_content()
    assert "talk.mp3 (1.0 KB)" in text and "talk.flac (2.5 MB)" in text
    assert text.count("/links/") == 2 and job_view.signed_link(job, "m2") in text
    single = mailer.compose(_done(mp3_id="m1", owner_email="a@example.com"), Status.DONE)
    assert single["Subject"].startswith("Your MP3 is ready") and single.get_content().count("/links/") == 1
