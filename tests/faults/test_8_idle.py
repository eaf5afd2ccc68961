"""A quiet spell is not a fault: after a minute without traffic (6 heartbeat intervals of the private
stack's 10 s, which the broker gives up on after 2; twice the longest idle timer of the stack, the HTTP
idle timeout of 30 s), readiness stays green probe after probe, no AMQP connection was dropped, and the
next upload goes through the whole pipeline.

Before the fix, idle AMQP connections (one per gateway request thread, the converter's publisher)
missed their heartbeats, the broker dropped them, and /readyz blinked 503 `rabbitmq: failing:
StreamLostError` while the logs filled with `Connection reset by peer` ERRORs.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from devkit.privstack import upload_bytes
from services.common import config

IDLE_SECONDS = 60
# Log marks of a dropped connection (pika's ERRORs, our reconnect warning) or of a publish that failed.
DROPPED = ("StreamLostError", "ConnectionReset", "Connection reset", "AMQP connection lost", "missed heartbeats",
           "AMQPHeartbeatTimeout", "left to the outbox", "not confirmed")


def _offsets(stack) -> dict[str, int]:
    return {name: len(stack.log(name)) for name in ("gateway", "converter", "notification")}


def _dropped_lines(stack, since: dict[str, int]) -> list[str]:
    return [f"{name}: {line[:300]}" for name, offset in since.items()
            for line in stack.log(name)[offset:].splitlines() if any(mark in line for mark in DROPPED)]


def _broker_log(stack) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(Path(stack.rabbit.base, "log").glob("*.log")))


def _reconnects(stack) -> list[str]:
    text = requests.get(f"{stack.converter_http}/metrics", timeout=10).text
    return sorted(line for line in text.splitlines() if line.startswith("vid2mp3_amqp_reconnects_total"))


def _readyz(url: str) -> tuple[int, dict | str]:
    response = requests.get(f"{url}/readyz", timeout=10)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def test_readiness_and_publishing_after_an_idle_minute(private_stack, media):
    stack = private_stack
    assert stack.env["AMQP_HEARTBEAT_SECONDS"] == "10", "the idle window must span many heartbeat intervals"
    idle_timeout = float(stack.env.get("HTTP_IDLE_TIMEOUT_SECONDS") or config.default("HTTP_IDLE_TIMEOUT_SECONDS"))
    assert IDLE_SECONDS >= 2 * idle_timeout, "the idle window must outlast every idle timer of the stack"
    token = stack.client().token
    # Warm up every AMQP connection that will then idle: a job through the pipeline (gateway publish,
    # converter publish), and concurrent probes so that the gateway holds several broker connections.
    warm = upload_bytes(stack.gateway, token, media["short"], "before-idle.mp4")
    assert warm.status_code == 202, warm.text
    stack.wait_final([warm.json()["job_id"]], 60)
    with ThreadPoolExecutor(6) as pool:
        assert {status for status, _ in pool.map(_readyz, [stack.gateway] * 12)} == {200}

    since, broker_since, reconnects = _offsets(stack), len(_broker_log(stack)), _reconnects(stack)
    # The quiet spell: nobody calls any service (the gateway's outbox relay keeps polling MongoDB).
    time.sleep(IDLE_SECONDS)

    probes = [_readyz(stack.gateway) for _ in range(20)]
    assert [status for status, _ in probes] == [200] * 20, f"readiness blinked after the quiet spell: {probes}"
    assert probes[-1][1] == {"status": "ok", "checks": {"auth": "ok", "mongodb": "ok", "rabbitmq": "ok"}}
    for worker in (stack.converter_http, stack.notification_http):
        assert _readyz(worker)[0] == 200

    # The first publishes after the quiet spell (gateway -> video queue, converter -> mp3 queue) are confirmed
    # on the connections that idled: the job goes all the way through, with its email.
    after = upload_bytes(stack.gateway, token, media["short"], "after-idle.mp4")
    assert after.status_code == 202, after.text
    job_id = after.json()["job_id"]
    stack.figures(f"idle {IDLE_SECONDS} s (heartbeat 10 s)", [job_id], timeout=60)

    dropped = _dropped_lines(stack, since)
    assert not dropped, "AMQP connections were dropped while idle:\n" + "\n".join(dropped)
    missed = [line for line in _broker_log(stack)[broker_since:].splitlines() if "heartbeat" in line.lower()]
    assert not missed, "the broker saw missed heartbeats:\n" + "\n".join(missed[:10])
    # No connection was reopened (every reconnect is counted with its reason).
    assert _reconnects(stack) == reconnects
