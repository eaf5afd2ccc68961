"""A tus upload outlives its gateway: half sent with tuspy, the gateway killed (-9) and started again,
and tuspy resumes at the offset the new process reports (the state is in MongoDB, not in the process)."""
from __future__ import annotations

import io

import requests
from tusclient import client as tus_client

from devkit.media import make_media


def _uploader(stack, user, data: bytes, url: str | None = None):
    tus = tus_client.TusClient(f"{stack.gateway}/uploads/", headers=user.auth)
    return tus.uploader(file_stream=io.BytesIO(data), chunk_size=200_000, url=url, metadata={"filename": "restart.mp4"})


def test_gateway_restart_midway_loses_no_upload(private_stack, tmp_path):
    stack = private_stack
    video = make_media(tmp_path / "restart.mp4", seconds=3, video="testsrc2=size=320x240:rate=25",
                       extra=["-qp", "0"]).read_bytes()
    user = stack.client()
    first = _uploader(stack, user, video)
    first.upload_chunk()
    first.upload_chunk()  # 400 000 bytes: one full GridFS chunk and a partial one kept as the tail
    assert first.offset == 400_000
    pid = stack.kill("gateway")
    stack.wait_exit(pid, 10)
    stack.up()
    again = _uploader(stack, user, video, url=first.url)
    assert again.offset == 400_000  # what the restarted gateway read from MongoDB
    again.upload()
    head = requests.head(first.url, headers={"Tus-Resumable": "1.0.0", **user.auth}, timeout=10)
    job_id = head.headers["Job-Id"]
    assert stack.wait_final([job_id], 90)[job_id]["status"] == "done"
    upload_id = first.url.rsplit("/", 1)[1]
    stored = b"".join(bytes(c["data"]) for c in stack.mongo["videos"].fs.chunks.find({"files_id": upload_id}))
    assert stored == video
