"""Several outputs, chapters and split=chapters through the running converter (issue 23): jobs with
`outputs` are stored straight in the database with their video in GridFS (the gateway's side of
`outputs` is not needed), their message published, and the stored results read back with readers
that are not ours: ffprobe (codecs, durations, chapters) and mutagen (ID3 CHAP/CTOC, TIT2, TRCK)."""
from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import mutagen.id3
import pytest

from services.common import messaging, messages
from services.common.jobs import Job, Status
from services.common.options import parse
from services.common.storage import files, job_records
from services.common.storage.connection import new_id

CHAPTERS = [("Intro", 0, 4), ("Main part", 4, 10), ("Q&A = questions; answers", 10, 12)]


def chaptered(path: Path, seconds: float = 12, chapters=CHAPTERS) -> Path:
    """A video with chapters (an FFMETADATA1 file of [CHAPTER] sections muxed into MP4 or MKV)."""
    meta = path.with_suffix(".ffmeta")
    lines = [";FFMETADATA1"]
    for title, start, end in chapters:
        escaped = re.sub(r"([=;#\\])", r"\\\1", title)
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start * 1000}", f"END={end * 1000}", f"title={escaped}"]
    meta.write_text("\n".join(lines) + "\n")
    picture = f"testsrc=size=160x120:rate=5:duration={seconds}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", picture,
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-i", str(meta),
                    "-map", "0", "-map", "1", "-map_chapters", "2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chapters")
    return {"mp4": chaptered(folder / "talk.mp4"), "mkv": chaptered(folder / "talk.mkv"),
            "plain": chaptered(folder / "plain.mp4", seconds=6, chapters=[])}


@pytest.fixture(scope="module")
def publisher(stack):
    return messaging.Publisher()


def store_video(path: Path) -> str:
    video_id = new_id()
    with files.open_writer(files.videos(), video_id, path.name, {"owner": "outputs-test"}) as writer:
        writer.write(path.read_bytes())
    return video_id


def run_job(publisher, source: Path, outputs: list[dict], filename: str = "talk.mp4", timeout: float = 90,
            pending: str | None = None) -> Job:
    """A job of `outputs` on `source`, as the gateway stores it, converted by the stack's converter."""
    canonical = [parse({k: str(v) for k, v in fields.items()}).to_dict() for fields in outputs]
    job = Job(_id=new_id(), owner=f"outputs-{uuid.uuid4().hex[:8]}", video_id=store_video(source), filename=filename,
              size=source.stat().st_size, options=canonical[0], outputs=canonical, published=True,
              pending_mp3_id=pending)
    job_records.create_job(job)
    messages.publish_video(publisher, job.id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = job_records.get_job(job.id)
        if got.status in (Status.DONE, Status.FAILED):
            return got
        time.sleep(0.2)
    raise AssertionError(f"job {job.id} did not end: {job_records.get_job(job.id)}")


def fetch(result: dict, folder: Path) -> Path:
    path = folder / result["name"]
    path.write_bytes(b"".join(files.read_file(files.results(), result["mp3_id"])))
    return path


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-show_chapters", "-of", "json",
                          str(path)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def chapters_read(data: dict) -> list[tuple[str, float, float]]:
    return [(c.get("tags", {}).get("title"), round(float(c["start_time"]), 2), round(float(c["end_time"]), 2))
            for c in data["chapters"]]


def test_three_outputs_of_one_job_each_stored_with_the_sources_chapters(publisher, sources, tmp_path):
    job = run_job(publisher, sources["mkv"], [{"format": "mp3", "bitrate": "192k"},
                                              {"format": "opus", "bitrate": "64k"}, {"format": "flac"}])
    assert job.status == Status.DONE, job.reason
    assert [r["name"] for r in job.results] == ["talk.mp3", "talk.opus", "talk.flac"]
    assert [r["output"] for r in job.results] == [0, 1, 2]
    assert job.mp3_id == job.results[0]["mp3_id"] and len({r["mp3_id"] for r in job.results}) == 3
    assert job.chapters == [{"title": t, "start": s, "end": e} for t, s, e in CHAPTERS]
    assert job.pending_mp3_id is None and job.source_loudness is None
    durations = []
    for result, (codec, rate) in zip(job.results, (("mp3", "192000"), ("opus", "64000"), ("flac", None)),
                                     strict=True):
        path = fetch(result, tmp_path)
        assert path.stat().st_size == result["size"]
        data = ffprobe(path)
        stream = data["streams"][0]
        assert stream["codec_name"] == codec, result
        if codec == "mp3":
            assert stream["bit_rate"] == rate
        if codec == "opus":  # ffprobe has no stream bitrate for Ogg: the file's average, CBR 64k
            assert abs(int(data["format"]["bit_rate"]) - 64000) < 8000, data["format"]
        durations.append(float(data["format"]["duration"]))
        assert abs(result["audio_seconds"] - 12) < 0.05 and result["media_type"] == parse(
            {"format": codec}).spec.media_type
        # The source's chapters, as each container carries them, read back by ffprobe.
        read = chapters_read(data)
        assert [c[0] for c in read] == [t for t, _, _ in CHAPTERS], (codec, read)
        assert [c[1] for c in read] == [0, 4, 10], (codec, read)
        if codec == "mp3":  # ID3v2 CHAP and CTOC frames, read by mutagen
            tags = mutagen.id3.ID3(path)
            chaps = sorted(tags.getall("CHAP"), key=lambda f: f.start_time)
            assert [(c.start_time, c.end_time, str(c.sub_frames["TIT2"])) for c in chaps] == [
                (s * 1000, e * 1000, t) for t, s, e in CHAPTERS]
            toc = tags.getall("CTOC")
            assert len(toc) == 1 and list(toc[0].child_element_ids) == [c.element_id for c in chaps]
    assert max(durations) - min(durations) < 0.06, durations


def test_m4a_and_a_streamed_mp3_carry_chapters_too(publisher, sources, tmp_path):
    job = run_job(publisher, sources["mp4"], [{"format": "m4a"}])
    assert job.status == Status.DONE, job.reason
    assert [c[0] for c in chapters_read(ffprobe(fetch(job.results[0], tmp_path)))] == [t for t, _, _ in CHAPTERS]
    job = run_job(publisher, sources["mp4"], [{}])  # one mp3: streamed into storage while encoded
    assert job.status == Status.DONE, job.reason
    path = fetch(job.results[0], tmp_path)
    assert len(mutagen.id3.ID3(path).getall("CHAP")) == 3


def test_a_trim_shifts_and_clips_the_chapters(publisher, sources, tmp_path):
    job = run_job(publisher, sources["mp4"], [{"format": "opus", "start": "2", "end": "9"}])
    assert job.status == Status.DONE, job.reason
    read = chapters_read(ffprobe(fetch(job.results[0], tmp_path)))
    assert [(title, start) for title, start, _ in read] == [("Intro", 0), ("Main part", 2)], read
    assert read[0][2] == 2 and abs(read[1][2] - 7) < 0.02, read  # Ogg's last one ends with the file
    assert len(job.chapters) == 3  # the job lists the source's


def test_split_chapters_makes_one_titled_numbered_result_per_chapter(publisher, sources, tmp_path):
    job = run_job(publisher, sources["mp4"], [{"format": "mp3", "split": "chapters", "title": "The talk"},
                                              {"format": "opus", "bitrate": "32k"}])
    assert job.status == Status.DONE, job.reason
    split, whole = job.results[:3], job.results[3:]
    assert [r["name"] for r in split] == ["talk - 01 - Intro.mp3", "talk - 02 - Main part.mp3",
                                          "talk - 03 - Q&A = questions; answers.mp3"]
    assert [r["name"] for r in whole] == ["talk.opus"] and whole[0]["output"] == 1 and "chapter" not in whole[0]
    for n, (result, (title, start, end)) in enumerate(zip(split, CHAPTERS, strict=True), 1):
        assert result["chapter"] == {"index": n, "count": 3, "title": title, "start": start, "end": end}
        assert result["output"] == 0 and result["audio_seconds"] == end - start
        path = fetch(result, tmp_path)
        tags = mutagen.id3.ID3(path)
        assert (str(tags["TIT2"]), str(tags["TRCK"]), str(tags["TALB"])) == (title, f"{n}/3", "The talk")
        assert not tags.getall("CHAP")  # a chapter file has no chapters of its own
        # Cut exactly: LAME adds at most a frame of padding (26 ms at 44.1 kHz) to the chapter's length.
        assert 0 <= float(ffprobe(path)["format"]["duration"]) - (end - start) < 0.06, result
    assert abs(float(ffprobe(fetch(whole[0], tmp_path))["format"]["duration"]) - 12) < 0.05


def test_split_of_a_source_without_chapters_fails_with_the_reason(publisher, sources):
    job = run_job(publisher, sources["plain"], [{"format": "mp3", "split": "chapters"}])
    assert job.status == Status.FAILED and "no chapters" in job.reason, job.reason
    assert job.results == [] and job.pending_mp3_id is None


def test_normalize_records_the_sources_loudness(publisher, sources):
    job = run_job(publisher, sources["mp4"], [{"format": "mp3", "normalize": "true"}, {"format": "flac"}])
    assert job.status == Status.DONE, job.reason
    loudness = job.source_loudness
    assert set(loudness) == {"integrated_lufs", "range_lu", "true_peak_dbtp"}
    # ffmpeg's ebur128 on the source, independent of loudnorm's own pass.
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(sources["mp4"]), "-map", "0:a:0",
                           "-af", "ebur128", "-f", "null", "-"], capture_output=True, text=True, check=True)
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", done.stderr[done.stderr.rindex("Summary:"):]).group(1))
    assert abs(loudness["integrated_lufs"] - integrated) < 0.5, (loudness, integrated)


def test_a_dead_attempts_files_are_all_removed(publisher, sources):
    """A crashed attempt's results (whole, partial: chunks only) and peaks file, all derived from the one id the
    job recorded, are removed by the next attempt, which stores its own."""
    dead = new_id()
    bucket = files.results()
    for kind, n in (("result", 0), ("waveform", 0), ("result", 1)):
        with files.open_writer(bucket, files.attempt_file_id(dead, kind, n), "x", {}) as writer:
            writer.write(b"old" * 1000)
    files.insert_chunks(bucket, files.attempt_file_id(dead, "result", 2), 0, [b"partial"])  # no fs.files entry
    assert bucket.chunks.find_one({"files_id": files.attempt_file_id(dead, "result", 2)}) is not None
    assert bucket.files.find_one({"_id": files.attempt_file_id(dead, "waveform", 0)}) is not None
    job = run_job(publisher, sources["mkv"], [{"format": "mp3"}, {"format": "opus"}, {"format": "flac"}],
                  pending=dead)
    assert job.status == Status.DONE, job.reason
    for kind, n in (("result", 0), ("waveform", 0), ("result", 1), ("result", 2)):
        file_id = files.attempt_file_id(dead, kind, n)
        assert bucket.files.find_one({"_id": file_id}) is None and bucket.chunks.find_one({"files_id": file_id}) is None
    assert all(files.file_info(bucket, r["mp3_id"]) for r in job.results)


def test_a_streamed_result_keeps_a_copy_for_analysis(sources, tmp_path):
    """The one streamed output goes into its sink while ffmpeg encodes, and the same bytes to the work
    folder, where analysis reads the result as a file."""
    import io

    from services.converter import encode, plan, probe

    info = probe.probe(str(sources["mp4"]))
    targets = plan.targets_of(info, [parse({})], "talk")
    assert plan.streamable(targets)
    sink = io.BytesIO()
    done = encode.convert_targets(str(sources["mp4"]), info, targets, str(tmp_path), 12, sink=sink)
    copy = Path(encode.tee_path(str(tmp_path), targets[0]))
    assert done.sizes == [len(sink.getvalue())] and copy.read_bytes() == sink.getvalue() and copy.suffix == ".mp3"
