"""The janitor on the private stack: retention, leftovers of a killed gateway and a killed converter,
and two janitors at once. Each janitor round is the real process (`python -m services.janitor --once`).

Retention here runs with zero retention times: every ended job of the stack expires, so this file
runs last of the fault tests (each fault test makes its own jobs).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests

from devkit.stack import ROOT
from services.common import outputs
from services.common.jobs import Job
from devkit.privstack import upload_bytes, wait_until

BOUNDARY = "vid2mp3-janitor-test"


def janitor(stack, **settings) -> subprocess.Popen:
    env = dict(stack.env, OTEL_SERVICE_NAME="janitor", WORK_DIR=str(stack.home / "work"),
               MONGO_URI=f"mongodb://127.0.0.1:{stack.ports['MONGO_LOCAL_PORT']}",
               **{k: str(v) for k, v in settings.items()})
    return subprocess.Popen([sys.executable, "-m", "services.janitor", "--once"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_janitor(stack, **settings) -> None:
    proc = janitor(stack, **settings)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out


def stats(stack) -> dict:
    return stack.mongo["vid2mp3"].janitor.find_one({"_id": "stats"}) or {}


def removed(stack, reason: str) -> int:
    return stats(stack).get("removed", {}).get(reason, 0)


def files_of(stack, job_id: str) -> dict[str, int]:
    """The job's video and MP3 files and chunks still stored."""
    job = stack.job(job_id) or {}
    ids = {"videos": [job.get("video_id")], "mp3s": [job.get("mp3_id"), job.get("pending_mp3_id")]}
    counts = {}
    for db, file_ids in ids.items():
        file_ids = [i for i in file_ids if i]
        fs = stack.mongo[db].fs
        counts[f"{db}_files"] = sum(1 for i in file_ids if fs.files.find_one({"_id": i}, {"_id": 1}))
        counts[f"{db}_chunks"] = sum(len(list(fs.chunks.find({"files_id": i}, {"n": 1}))) for i in file_ids)
    return counts


NOTHING = {"videos_files": 0, "videos_chunks": 0, "mp3s_files": 0, "mp3s_chunks": 0}


@pytest.fixture(scope="module")
def long_video(ten_minute_video):
    return ten_minute_video.read_bytes()


class SlowUpload:
    """A multipart upload sent by hand over a socket, so the test decides when each byte goes."""

    def __init__(self, gateway: str, token: str, size: int):
        head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp4\"\r\n"
                f"Content-Type: video/mp4\r\n\r\n").encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.left = size
        url = urlsplit(gateway)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        self.sock.sendall(f"POST /upload HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                          f"Content-Length: {len(head) + size + len(self.tail)}\r\n\r\n".encode() + head)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.left -= len(data)

    def finish(self, data: bytes) -> int:
        assert len(data) == self.left
        self.sock.sendall(data + self.tail)
        status = int(self.sock.recv(65536).split(b" ", 2)[1])
        self.sock.close()
        return status


def _uploads(stack) -> list[dict]:
    return list(stack.mongo["vid2mp3"].uploads.find())


def _chunks_written(stack, video_id: str) -> int:
    return len(list(stack.mongo["videos"].fs.chunks.find({"files_id": video_id}, {"n": 1})))


def test_killed_gateway_leaves_an_upload_the_janitor_removes_but_never_a_live_one(private_stack, long_video):
    stack = private_stack
    user = stack.client()
    known = {u["_id"] for u in _uploads(stack)}
    abandoned = SlowUpload(stack.gateway, user.token, len(long_video))
    abandoned.send(long_video[:5 * 1024 * 1024])  # more than one window of chunks: they reach storage
    record = wait_until(lambda: [u for u in _uploads(stack) if u["_id"] not in known], "upload recorded", 30)[0]
    wait_until(lambda: _chunks_written(stack, record["_id"]), "chunks stored", 30)
    stack.wait_exit(stack.kill("gateway"), 20)
    stack.up()
    before = removed(stack, "abandoned_upload")

    grace = 15  # longer than storage.FLUSH_SECONDS: a live upload's chunks are never older than that
    live = SlowUpload(stack.gateway, user.token, len(long_video))
    deadline = time.monotonic() + grace + 3
    sent = 0
    while time.monotonic() < deadline:  # ~400 kB/s, slower than any window fills
        live.send(long_video[sent:sent + 200 * 1024])
        sent += 200 * 1024
        time.sleep(0.5)
    run_janitor(stack, JANITOR_GRACE_SECONDS=grace)
    assert _chunks_written(stack, record["_id"]) == 0
    assert record["_id"] not in {u["_id"] for u in _uploads(stack)}
    assert removed(stack, "abandoned_upload") == before + 1
    assert live.finish(long_video[sent:]) == 202  # the live upload lost nothing
    job = stack.jobs().find_one({"filename": "slow.mp4", "owner": {"$exists": True}}, sort=[("created", -1)])
    assert stack.wait_final([job["_id"]], 120)[job["_id"]]["status"] == "done"


def test_killed_converter_leaves_a_half_mp3_the_janitor_removes(private_stack, long_video):
    stack = private_stack
    user = stack.client()
    job_id = upload_bytes(stack.gateway, user.token, long_video, "killed.mp4").json()["job_id"]
    pending = wait_until(lambda: (stack.job(job_id) or {}).get("pending_mp3_id"), "MP3 being written", 60, 0.05)
    wait_until(lambda: stack.mongo["mp3s"].fs.chunks.find_one({"files_id": pending}, {"n": 1}), "MP3 chunks", 60, 0.05)
    stack.wait_exit(stack.kill("converter"), 20)  # with ffmpeg
    cancel = requests.post(f"{stack.gateway}/jobs/{job_id}/cancel", headers=user.auth, timeout=10)
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    stack.up()
    before = removed(stack, "abandoned_mp3")
    assert files_of(stack, job_id)["mp3s_chunks"] > 0
    run_janitor(stack)
    assert removed(stack, "abandoned_mp3") == before + 1
    assert {k: v for k, v in files_of(stack, job_id).items() if k.startswith("mp3s")} == {"mp3s_files": 0,
                                                                                          "mp3s_chunks": 0}
    assert stack.mongo["mp3s"].fs.chunks.find_one({"files_id": pending}, {"n": 1}) is None


def test_retention_expires_jobs_and_two_janitors_remove_nothing_twice(private_stack, media, long_video):
    stack = private_stack
    user = stack.client()
    # One user each: the same content from one user would reuse the first MP3 (dedup), not convert.
    owners = [user] + [stack.client() for _ in range(4)]
    done = [upload_bytes(stack.gateway, owner.token, media["short"], f"keep-{i}.mp4").json()["job_id"]
            for i, owner in enumerate(owners[:4])]
    failed = upload_bytes(stack.gateway, user.token, b"not a video at all" * 100, "bad.mp4").json()["job_id"]
    stack.wait_final(done + [failed], 90)
    stack.set_delay("ffmpeg", 8)  # a job converting while the janitors run: nothing of it may go
    live = upload_bytes(stack.gateway, owners[4].token, media["short"], "live.mp4").json()["job_id"]
    wait_until(lambda: (stack.job(live) or {}).get("status") == "converting", "live job converting", 30, 0.05)
    jobs = stack.jobs()
    ended = jobs.count_documents({"status": {"$in": ["done", "failed", "cancelled"]}})
    videos_due = jobs.count_documents({"ended_at": {"$ne": None}, "video_removed": {"$in": [False, None]}})
    # files, as the janitor counts them: every result of a done job and its waveform (several outputs too)
    results_due = sum(len(outputs.file_ids(Job.from_doc(doc))) for doc in jobs.find({"status": "done"}))
    first = stats(stack)

    both = [janitor(stack, VIDEO_RETENTION_SECONDS=0, RESULT_RETENTION_SECONDS=0) for _ in range(2)]
    for proc in both:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    after = stats(stack)

    def delta(*path):
        old, new = first, after
        for key in path:
            old, new = (old or {}).get(key, 0), (new or {}).get(key, 0)
        return new - old

    left = list(jobs.find({"status": {"$in": ["done", "failed", "cancelled"]}}, {"status": 1}))
    assert delta("expired") == ended, (first, after, left)  # each ended job expired once, by one janitor
    assert delta("removed", "video_retention") == videos_due
    assert delta("removed", "result_retention") == results_due
    for job_id in done + [failed]:
        assert stack.job(job_id)["status"] == "expired"
        assert files_of(stack, job_id) == NOTHING
    assert stack.job(live)["status"] == "converting" and files_of(stack, live)["videos_chunks"] > 0
    stack.set_delay("ffmpeg", 0)
    assert stack.wait_final([live], 60)[live]["status"] == "done"

    view = requests.get(f"{stack.gateway}/jobs/{done[0]}", headers=user.auth, timeout=10).json()
    assert view["status"] == "expired" and view["expires_at"] and view["download_url"] is None
    gone = requests.get(f"{stack.gateway}/download", params={"fid": stack.job(done[0])["mp3_id"]},
                        headers=user.auth, timeout=10)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "expired"
    run_janitor(stack)  # a round with default retention: what it counts is what storage holds
    recount = stats(stack)["stored"]
    for db in ("videos", "mp3s"):
        files = list(stack.mongo[db].fs.files.find({}, {"length": 1}))
        assert recount[db] == {"files": len(files), "bytes": sum(f["length"] for f in files)}
