"""kill -9 of the converter before ffmpeg, during ffmpeg, and after the MP3 is stored but before the ack.

Every job still ends done with exactly one MP3 and one email; a dead worker's partial work is
cleaned up by the next one.
"""
from __future__ import annotations

import time

from devkit.privstack import children_of, cmdline, upload_bytes, wait_until


def _upload(stack, token, data, n):
    ids = []
    for i in range(n):
        response = upload_bytes(stack.gateway, token, data, f"kill-{i}.mp4")
        assert response.status_code == 202, response.text
        ids.append(response.json()["job_id"])
    return ids


def _converting(stack, job_id):
    return (stack.job(job_id) or {}).get("status") == "converting"


def test_kill9_converter_in_every_window(private_stack, media):
    stack = private_stack
    token = stack.client().token
    all_ids: list[str] = []
    kills = []

    # 1. Before ffmpeg: the job is claimed and probed, and ffmpeg's wrapper waits before it runs.
    stack.set_delay("ffmpeg", 4)
    ids = _upload(stack, token, media["short"], 2)
    all_ids += ids
    wait_until(lambda: _converting(stack, ids[0]), "first job converting", 30, 0.05)
    time.sleep(1)
    pid = stack.kill("converter")
    kills.append(("before ffmpeg", pid))
    stack.wait_exit(pid, 10)
    assert (stack.job(ids[0]) or {})["status"] == "converting"  # caught mid-job
    stack.set_delay("ffmpeg", 0)
    stack.up()

    # 2. During ffmpeg: ffmpeg itself runs (slowly); its process dies with the worker.
    stack.set_delay("ffmpeg", 4)
    ids = _upload(stack, token, media["short"], 2)
    all_ids += ids
    wait_until(lambda: _converting(stack, ids[0]), "job converting", 30, 0.05)
    wait_until(lambda: any("slow-ffmpeg" in cmdline(p) for p in children_of(stack.pid("converter"))),
               "ffmpeg running", 30, 0.05)
    pid = stack.kill("converter")
    kills.append(("during ffmpeg", pid))
    stack.wait_exit(pid, 10)
    stack.set_delay("ffmpeg", 0)
    stack.up()

    # 3. After the MP3 is stored and the job is done, before the ack: the broker's memory alarm blocks
    #    the converter's publish of the "done" message, which comes before the ack.
    stack.wait_final(all_ids, 90)  # nothing else may be waiting to publish
    stack.set_delay("ffmpeg", 2)
    ids = _upload(stack, token, media["short"], 1)
    all_ids += ids
    wait_until(lambda: _converting(stack, ids[0]), "job converting", 30, 0.05)
    stack.rabbit.ctl("set_vm_memory_high_watermark", "0")
    stack.set_delay("ffmpeg", 0)
    try:
        wait_until(lambda: (stack.job(ids[0]) or {}).get("status") == "done", "job done (announce blocked)", 40, 0.05)
        time.sleep(1)
        assert not stack.mails().get(ids[0]), "the done message got out despite the alarm"
        pid = stack.kill("converter")
        kills.append(("after MP3 stored, before ack", pid))
        stack.wait_exit(pid, 10)
    finally:
        stack.rabbit.ctl("set_vm_memory_high_watermark", "0.4")
    stack.up()

    figures = stack.figures("kill -9 converter (3 windows)", all_ids, timeout=120)
    assert figures["completed"] == len(all_ids)
    # Work folders of the killed converters were removed by the restarted one.
    work = stack.home / "work"
    for _, dead in kills:
        assert not list(work.glob(f"vid2mp3-{dead}-*")), f"work dir of dead converter {dead} left behind"
