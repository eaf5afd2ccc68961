"""Pure logic of several outputs, chapters and split (issue 23): which outputs share a run, chapters
under a trim, split targets, result names, the chapters file, the ids of an attempt's files."""
from __future__ import annotations

import pytest

from services.common.jobs import Job
from services.common.messaging import PermanentError
from services.common.options import parse
from services.common.storage import files
from services.converter import command, conversion, plan
from services.converter.probe import AudioTrack, MediaInfo

CHAPTERS = [{"title": "Intro", "start": 0.0, "end": 4.0}, {"title": "Main", "start": 4.0, "end": 10.0},
            {"title": "", "start": 10.0, "end": 12.0}]


def media(chapters=CHAPTERS) -> MediaInfo:
    return MediaInfo(12.0, "aac", 1, 1, 12.0, [AudioTrack("aac", 12.0, 44100, 2)], list(chapters))


def test_outputs_that_share_track_and_cut_share_a_run():
    outputs = [parse({}), parse({"format": "opus"}), parse({"format": "flac", "start": "2"}),
               parse({"format": "m4a", "normalize": "true"}), parse({"format": "wav"})]
    runs = plan.runs_of(plan.targets_of(media(), outputs, "talk"))
    assert [[t.output for t in run] for run in runs] == [[0, 1, 4], [2], [3]]


def test_chapters_are_shifted_and_clipped_to_the_kept_part():
    assert plan.chapters_within(CHAPTERS, parse({"start": "2", "end": "10"})) == [
        {"title": "Intro", "start": 0.0, "end": 2.0}, {"title": "Main", "start": 2.0, "end": 8.0}]
    assert plan.chapters_within(CHAPTERS, parse({})) == CHAPTERS


def test_split_makes_one_numbered_target_per_chapter_and_refuses_a_file_without():
    targets = plan.targets_of(media(), [parse({"split": "chapters", "start": "1"})], "talk")
    assert [(t.title, t.track, t.seconds) for t in targets] == [("Intro", "1/3", 3.0), ("Main", "2/3", 6.0),
                                                                 ("Chapter 3", "3/3", 2.0)]
    assert targets[0].chapter == {"index": 1, "count": 3, "title": "Intro", "start": 1.0, "end": 4.0}
    with pytest.raises(PermanentError, match="no chapters"):
        plan.targets_of(media([]), [parse({"split": "chapters"})], "talk")


def test_result_names_are_unique_and_carry_the_chapter():
    job = Job(_id="j", owner="o", video_id="v", filename="My talk.mp4")
    outputs = [parse({}), parse({"bitrate": "320k"}), parse({"format": "opus", "split": "chapters"})]
    chapters = [{"title": "A/B: c?", "start": 0.0, "end": 6.0}, {"title": "End", "start": 6.0, "end": 12.0}]
    names = conversion.result_names(job, plan.targets_of(media(chapters), outputs, "My talk"))
    assert names == ["My talk.mp3", "My talk (2).mp3", "My talk - 01 - A B c.opus", "My talk - 02 - End.opus"]


def test_the_chapters_file_escapes_what_ffmetadata_reads_as_syntax():
    text = command.ffmetadata([{"title": "Q&A = a;b#c\\d", "start": 1.5, "end": 2.25}])
    assert text == (";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=2250\n"
                    "title=Q&A \\= a\\;b\\#c\\\\d\n")


def test_an_attempts_files_derive_from_its_one_id():
    attempt = "a" * 24
    assert files.attempt_file_id(attempt, "result", 0) == attempt
    derived = {files.attempt_file_id(attempt, kind, n) for kind in files.ATTEMPT_KINDS for n in range(3)}
    assert len(derived) == 6 and all(len(i) == 24 and int(i, 16) >= 0 for i in derived)
    assert files.attempt_file_id("b" * 24, "result", 1) not in derived


def test_source_loudness_from_the_first_pass_measurement():
    assert conversion.source_loudness({"input_i": "-23.1", "input_lra": "4.0", "input_tp": "-3.2"}) == {
        "integrated_lufs": -23.1, "range_lu": 4.0, "true_peak_dbtp": -3.2}
    assert conversion.source_loudness(None) is None
