"""Poison messages on each queue are consumed, logged and dead-lettered with a reason; the workers keep serving."""
from __future__ import annotations

import json
import time

import pika

from devkit.privstack import upload_bytes, wait_until


def _publish(channel, queue, body, message_id):
    channel.basic_publish("", queue, body if isinstance(body, bytes) else json.dumps(body).encode(),
                          pika.BasicProperties(delivery_mode=2, message_id=message_id, content_type="application/json"),
                          mandatory=True)


def _dead_letters(channel, queue, prefix):
    found = {}
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return found
        if (properties.message_id or "").startswith(prefix):
            found[properties.message_id] = (properties.headers or {}).get("x-death-reason")
            channel.basic_ack(method.delivery_tag)
        else:
            channel.basic_nack(method.delivery_tag, requeue=True)
            return found


def test_poison_messages_are_dead_lettered_and_workers_keep_serving(private_stack, media):
    stack = private_stack
    token = stack.client().token
    pids = {name: stack.pid(name) for name in ("converter", "notification")}
    missing_file_job = "ab" * 12
    now = time.time()
    stack.jobs().insert_one({"_id": missing_file_job, "owner": "poison", "owner_email": "poison@example.com",
                             "filename": "gone.mp4", "size": 1, "video_id": "cd" * 12, "status": "queued",
                             "created": now, "times": {"queued": now}, "published": True, "attempts": 0,
                             "outbox_lease": 0.0, "lease_until": 0.0, "mp3_id": None, "reason": None})
    connection, channel = stack.rabbit.channel()
    try:
        _poison_and_check(stack, token, channel, missing_file_job, media)
    finally:
        connection.close()  # left open, it would idle past its heartbeats into the next test
    assert {name: stack.pid(name) for name in pids} == pids


def _poison_and_check(stack, token, channel, missing_file_job, media):
    channel.confirm_delivery()
    video_poison = {"poison-v1": b"{not json", "poison-v2": b"[1, 2, 3]", "poison-v3": {"job_id": "ef" * 12},
                    "poison-v4": {"job_id": 12}, "poison-v5": b"\xff\xfe\x00binary"}
    mp3_poison = {"poison-m1": b"<<<", "poison-m2": {"job_id": "ef" * 12, "status": "done"},
                  "poison-m3": {"job_id": missing_file_job, "status": "exploded"},
                  "poison-m4": {"job_id": missing_file_job, "status": "done"}}  # status does not match the job
    for message_id, body in video_poison.items():
        _publish(channel, "video", body, message_id)
    for message_id, body in mp3_poison.items():
        _publish(channel, "mp3", body, message_id)
    _publish(channel, "video", {"job_id": missing_file_job}, "missing-file")
    real = upload_bytes(stack.gateway, token, media["short"], "after-poison.mp4").json()["job_id"]

    video_dead, mp3_dead = {}, {}

    def all_dead():
        video_dead.update(_dead_letters(channel, "video.dead", "poison-"))
        mp3_dead.update(_dead_letters(channel, "mp3.dead", "poison-"))
        return len(video_dead) == len(video_poison) and len(mp3_dead) == len(mp3_poison)

    wait_until(all_dead, "every poison message in its dead-letter queue", 60, 0.5)
    reasons = {**video_dead, **mp3_dead}
    assert all(isinstance(r, (str, bytes)) and r for r in reasons.values()), reasons
    # The missing upload is the user's problem, not a poison message: the job fails with a reason and an email.
    stack.figures("poison messages (9) + 2 jobs", [missing_file_job, real], expect_failed=1)
    assert "missing" in stack.job(missing_file_job)["reason"]
    assert stack.job(real)["status"] == "done"
    assert "message dead-lettered" in stack.log("converter") and "message dead-lettered" in stack.log("notification")
    print("dead-letter reasons:", json.dumps({k: str(v) for k, v in sorted(reasons.items())}, indent=1))
