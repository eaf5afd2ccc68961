"""SMTP down for a while: emails are retried with back-off and all arrive once it is back, none twice."""
from __future__ import annotations

import signal
import time

from devkit.privstack import upload_bytes


def test_smtp_outage(private_stack, media):
    stack = private_stack
    token = stack.client().token
    notification_pid = stack.pid("notification")
    pid = stack.kill("smtp", signal.SIGTERM)
    stack.wait_exit(pid, 10)
    ids = []
    for i in range(3):
        response = upload_bytes(stack.gateway, token, media["short"], f"smtp-{i}.mp4")
        assert response.status_code == 202
        ids.append(response.json()["job_id"])
    stack.wait_final(ids, 60)
    time.sleep(4)  # a few failed attempts
    assert not any(stack.mails().get(j) for j in ids)
    assert "SMTP failed" in stack.log("notification")
    stack.up()  # brings back only the SMTP server
    stack.figures("SMTP down ~6 s", ids)
    assert stack.pid("notification") == notification_pid
