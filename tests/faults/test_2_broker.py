"""Stop and restart the private RabbitMQ while uploads and conversions run.

Uploads during the outage answer 202 (the job is durable and the outbox publishes it later) or
503 with nothing stored; the workers reconnect by themselves; nothing is lost or duplicated.
"""
from __future__ import annotations

import time

import requests

from devkit.privstack import upload_bytes, wait_until


def _status(url):
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def test_broker_restart_mid_flight(private_stack, media):
    stack = private_stack
    token = stack.client().token
    pids = {name: stack.pid(name) for name in ("converter", "notification", "gateway")}
    stack.set_delay("ffmpeg", 1.5)
    accepted = []
    for i in range(3):
        response = upload_bytes(stack.gateway, token, media["short"], f"before-{i}.mp4")
        assert response.status_code == 202, response.text
        accepted.append(response.json()["job_id"])
    owner = None
    wait_until(lambda: (stack.job(accepted[0]) or {}).get("status") == "converting", "conversion running", 30, 0.05)
    owner = stack.job(accepted[0])["owner"]

    stack.rabbit.stop()
    outage_started = time.monotonic()
    rejected = 0
    for i in range(3):
        response = upload_bytes(stack.gateway, token, media["short"], f"during-{i}.mp4", timeout=90)
        if response.status_code == 202:
            accepted.append(response.json()["job_id"])
        else:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"]
            rejected += 1
    wait_until(lambda: _status(f"{stack.gateway}/readyz") == 503, "gateway readiness red", 15)
    wait_until(lambda: _status(f"{stack.converter_http}/readyz") == 503, "converter readiness red", 15)
    assert _status(f"{stack.gateway}/healthz") == 200
    assert _status(f"{stack.converter_http}/healthz") == 200
    assert _status(f"{stack.notification_http}/healthz") == 200
    # Jobs accepted during the outage wait in the outbox: stored, not yet published.
    stored = stack.jobs().count_documents({"owner": owner})
    assert stored == len(accepted), "a 503 upload left a job behind (or a 202 did not store one)"
    time.sleep(max(0.0, 4 - (time.monotonic() - outage_started)))

    stack.rabbit.start()
    stack.set_delay("ffmpeg", 0)
    wait_until(lambda: _status(f"{stack.converter_http}/readyz") == 200, "converter reconnected", 45)
    wait_until(lambda: _status(f"{stack.notification_http}/readyz") == 200, "notification reconnected", 45)
    wait_until(lambda: _status(f"{stack.gateway}/readyz") == 200, "gateway ready again", 30)
    figures = stack.figures("RabbitMQ stop/start mid-flight", accepted, rejected=rejected, timeout=120)
    assert figures["completed"] == len(accepted)
    assert all(stack.job(j)["published"] for j in accepted)
    # Nobody was restarted: the workers reconnected on their own.
    assert {name: stack.pid(name) for name in pids} == pids
