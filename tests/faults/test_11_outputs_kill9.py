"""kill -9 of the converter while it stores the results of a job of several outputs (issue 23): the next
attempt removes every file of the dead one (whole and partial), and the job ends with exactly its results."""
from __future__ import annotations

import subprocess
import time
import uuid

from devkit.privstack import wait_until
from services.common.jobs import Job
from services.common.options import parse
from services.common.storage import files
from services.common.storage.connection import new_id

# Three outputs of one decode; the WAV (~50 MB for 5 minutes) takes the stand-in seconds to store, long
# enough to kill the converter between the first stored result and the last.
OUTPUTS = [{"format": "mp3", "bitrate": "192k"}, {"format": "wav"}, {"format": "flac"}]


def _job_files(stack, job_id: str) -> list[dict]:
    return [f for f in stack.mp3_files() if (f.get("metadata") or {}).get("job_id") == job_id]


def test_kill9_while_storing_several_results_leaves_no_orphans(private_stack, tmp_path):
    stack = private_stack
    source = tmp_path / "long.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=300",
                    "-c:a", "aac", str(source)], check=True)
    video_id = new_id()
    with files.FileWriter(files.Bucket(stack.mongo["videos"]), video_id, "long.mkv", {}) as writer:
        writer.write(source.read_bytes())
    outputs = [parse(fields).to_dict() for fields in OUTPUTS]
    job = Job(_id=new_id(), owner=f"kill-{uuid.uuid4().hex[:8]}", owner_email="kill@example.com", video_id=video_id,
              filename="long.mkv",
              size=source.stat().st_size, options=outputs[0], outputs=outputs, published=False)
    doc = job.to_doc()
    doc.update(created=time.time() - 60, times={"queued": time.time() - 60}, rev=1)  # the outbox publishes it now
    stack.jobs().insert_one(doc)

    first = wait_until(lambda: _job_files(stack, job.id), "the first result stored", 90, 0.02)
    attempt = stack.job(job.id)["pending_mp3_id"]
    pid = stack.kill("converter")
    stack.wait_exit(pid, 10)
    assert stack.job(job.id)["status"] == "converting" and first
    stack.up()

    figures = stack.figures("kill -9 converter storing 3 results", [job.id], timeout=180)
    assert figures["completed"] == 1 and figures["orphan_mp3s"] == 0
    done = stack.job(job.id)
    assert [r["name"] for r in done["results"]] == ["long.mp3", "long.wav", "long.flac"]
    assert done["pending_mp3_id"] is None and done["mp3_id"] != attempt
    # Nothing of the dead attempt is left, not even chunks of a half-written file.
    chunks = stack.mongo["mp3s"].fs.chunks
    for n in range(len(OUTPUTS) + 1):
        for kind in files.ATTEMPT_KINDS:
            assert chunks.find_one({"files_id": files.attempt_file_id(attempt, kind, n)}, {"_id": 1}) is None
    stored = {str(r[key]) for r in done["results"] for key in ("mp3_id", "waveform_id")}  # each with its peaks
    assert {str(f["_id"]) for f in _job_files(stack, job.id)} == stored
