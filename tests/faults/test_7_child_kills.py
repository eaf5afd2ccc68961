"""SIGKILL of the ffmpeg child and of the whole converter, each at a random moment of a real job.

What a container's OOM killer or a forced pod deletion does. A child killed by a signal is a system
fault: the job is retried and ends `done` with a whole MP3, never `failed` with a media verdict.
"""
from __future__ import annotations

import os
import random
import signal
import time

import requests

from devkit.media import duration_of, make_media
from devkit.privstack import children_of, cmdline, upload_bytes, wait_until

SOURCE_SECONDS = 20
JOBS_PER_PHASE = 4
TOOL_DELAY = 1.0  # each tool waits this long before it runs: a window wide enough to land a kill in


def _tool_pid(stack, tool: str) -> int | None:
    converter = stack.pid("converter")
    for pid in children_of(converter) if converter else []:
        if tool in cmdline(pid).split("\0")[0] or f"slow-{tool}" in cmdline(pid):
            return pid
    return None


def _kill_tool_at_random(stack, tool: str, rng: random.Random) -> bool:
    """SIGKILL `tool` at a random moment of its life (waiting or working); True if it was hit."""
    pid = wait_until(lambda: _tool_pid(stack, tool), f"{tool} running", 30, 0.01)
    time.sleep(rng.uniform(0, TOOL_DELAY + 0.2))
    if tool not in cmdline(pid):  # already finished: nothing to kill
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _converter_kill_window(attempt: int) -> float:
    """Seconds after `converting` in which the converter is killed. Every other kill falls inside the
    tool's wait (the job cannot be done before it ends), so half land mid-job by construction; the
    others may land anywhere, after the result is stored too. A window always as wide as the second
    kind missed the job on all four kills about once in thirty runs."""
    return TOOL_DELAY if attempt % 2 == 0 else 2 * TOOL_DELAY + 0.3


def _converter_failures(stack) -> float:
    text = requests.get(f"{stack.converter_http}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("converter_child_failures_total{"))


def test_killed_children_and_converter_never_fail_a_good_job(private_stack, tmp_path):
    stack = private_stack
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    print(f"\nrandom seed {seed}")
    source = make_media(tmp_path / "clip.mp4", seconds=SOURCE_SECONDS).read_bytes()
    user = stack.client()
    stack.set_delay("ffmpeg", TOOL_DELAY)
    job_ids, hits = [], {"ffmpeg": 0, "converter": 0}
    failures_before = _converter_failures(stack)

    for i in range(JOBS_PER_PHASE):
        job_id = _upload(stack, user, source, f"ffmpeg-{i}.mp4")
        job_ids.append(job_id)
        hits["ffmpeg"] += _kill_tool_at_random(stack, "ffmpeg", rng)
        stack.wait_final([job_id], 60)
    assert _converter_failures(stack) - failures_before == hits["ffmpeg"]
    assert "media tool failed on a system fault, will retry" in stack.log("converter")

    for i in range(JOBS_PER_PHASE):
        job_id = _upload(stack, user, source, f"converter-{i}.mp4")
        job_ids.append(job_id)
        wait_until(lambda job_id=job_id: (stack.job(job_id) or {}).get("status") == "converting",
                   "converting", 30, 0.01)
        time.sleep(rng.uniform(0, _converter_kill_window(i)))
        pid = stack.kill("converter")  # the whole process group: children die with it
        hits["converter"] += stack.job(job_id)["status"] == "converting"
        stack.wait_exit(pid, 10)
        stack.up()

    print(f"kills that landed mid-job: {hits}")
    assert hits["ffmpeg"] and hits["converter"] >= JOBS_PER_PHASE // 2, hits
    stack.figures(f"SIGKILL ffmpeg/converter x{len(job_ids)}", job_ids, timeout=120)
    for job_id in job_ids:
        _assert_whole_mp3(stack, user, job_id, tmp_path)
    _assert_no_stray_chunks(stack)


def _upload(stack, user, source: bytes, name: str) -> str:
    """Upload as a client does: a converter killed while it held its user's quota lease (it reserves the
    result's room under it) blocks that user's admissions until the lease runs out (10 s), answered with
    503 too_busy and Retry-After, which a client waits for and retries."""
    deadline = time.monotonic() + 30
    while True:
        answer = upload_bytes(stack.gateway, user.token, source, name)
        if answer.status_code != 503 or time.monotonic() > deadline:
            break
        assert answer.json()["code"] == "too_busy", answer.text
        time.sleep(float(answer.headers["Retry-After"]))
    assert answer.status_code == 202, (answer.status_code, answer.text)
    return answer.json()["job_id"]


def _assert_whole_mp3(stack, user, job_id, tmp_path) -> None:
    job = stack.job(job_id)
    assert job["status"] == "done", (job_id, job.get("reason"))
    response = requests.get(f"{stack.gateway}/download", params={"fid": job["mp3_id"]}, headers=user.auth, timeout=30)
    assert response.status_code == 200
    mp3 = tmp_path / f"{job_id}.mp3"
    mp3.write_bytes(response.content)
    assert abs(duration_of(mp3) - SOURCE_SECONDS) <= 0.5, (job_id, duration_of(mp3))


def _assert_no_stray_chunks(stack) -> None:
    """No chunks of an MP3 that was never finished (a killed writer's are removed by the retry)."""
    db = stack.mongo["mp3s"]
    files = {str(f["_id"]) for f in db.fs.files.find({}, {"_id": 1})}
    owners = {str(c["files_id"]) for c in db.fs.chunks.find({}, {"files_id": 1})}
    assert owners <= files, f"chunks of unfinished MP3s: {owners - files}"
