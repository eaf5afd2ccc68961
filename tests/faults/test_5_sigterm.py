"""SIGTERM to each service in the middle of work: it stops gracefully and no job is lost."""
from __future__ import annotations

import http.client
import signal
import threading
import time
import uuid

import requests

from devkit.privstack import upload_bytes, wait_until


def test_sigterm_converter_finishes_the_job_in_hand(private_stack, media):
    stack = private_stack
    token = stack.client().token
    stack.set_delay("ffmpeg", 3)
    response = upload_bytes(stack.gateway, token, media["short"], "sigterm.mp4")
    job_id = response.json()["job_id"]
    wait_until(lambda: (stack.job(job_id) or {}).get("status") == "converting", "converting", 30, 0.05)
    pid = stack.kill("converter", signal.SIGTERM, group=False)  # as Kubernetes does: the main process only
    took = stack.wait_exit(pid, 60)
    assert stack.job(job_id)["status"] == "done", "the stopping converter did not finish its job"
    assert "worker stopped" in stack.log("converter")
    stack.set_delay("ffmpeg", 0)
    stack.up()
    stack.figures(f"SIGTERM converter (exit {took:.1f} s)", [job_id])


def test_sigterm_notification_and_auth(private_stack, media):
    stack = private_stack
    user = stack.client()
    ids = []
    for i in range(3):
        ids.append(upload_bytes(stack.gateway, user.token, media["short"], f"n-{i}.mp4").json()["job_id"])
    wait_until(lambda: (stack.job(ids[0]) or {}).get("status") == "done", "first done", 60, 0.05)
    pid = stack.kill("notification", signal.SIGTERM, group=False)
    stack.wait_exit(pid, 30)
    # auth mid-login: requests under way when it stops are answered, never with a 5xx.
    answers: list = []

    def logins():
        for _ in range(10):
            try:
                answers.append(requests.post(f"{stack.auth}/login", auth=(user.email, user.password),
                                             timeout=10).status_code)
            except requests.RequestException:
                answers.append("refused")

    thread = threading.Thread(target=logins)
    thread.start()
    time.sleep(0.2)
    auth_pid = stack.kill("auth", signal.SIGTERM, group=False)
    stack.wait_exit(auth_pid, 40)
    thread.join(60)
    assert not [a for a in answers if isinstance(a, int) and a >= 500], answers
    assert 200 in answers
    stack.up()
    stack.figures("SIGTERM notification + auth", ids)


def test_sigterm_gateway_mid_upload(private_stack, media):
    stack = private_stack
    user = stack.client()
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = head + media["short"] + tail
    port = int(stack.gateway.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", "/upload")
    conn.putheader("Authorization", f"Bearer {user.token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    half = len(body) // 2
    conn.send(body[:half])
    time.sleep(0.5)
    pid = stack.kill("gateway", signal.SIGTERM, group=False)
    time.sleep(1)
    conn.send(body[half:])
    response = conn.getresponse()
    data = response.read()
    assert response.status == 202, (response.status, data)
    import json

    job_id = json.loads(data)["job_id"]
    stack.wait_exit(pid, 40)
    stack.up()
    stack.figures("SIGTERM gateway mid-upload", [job_id])
