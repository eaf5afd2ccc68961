"""Webhook deliveries of the notification worker to a real receiver on 127.0.0.1, checked with the
`standardwebhooks` package (not with the project's own code)."""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest
import requests
import standardwebhooks

from services.common import config, messaging
from services.common.messages import FinishedMessage
from services.common.messaging import TransientError
from services.common.storage import job_records
from services.common.storage.connection import new_id
from services.common.webhook_secrets import new_secret, rotate, webhook_secret_of
from services.notification import deliveries, webhook
from tests.helpers import mails_for, stored_job, wait_mail
from devkit.receiver import Dripper, Receiver


def ended_job(url: str, status: str = "done", owner: str | None = None):
    job = stored_job(callback_url=url, owner=owner or f"hook-owner-{new_id()}",
                     owner_email=f"{new_id()}@example.com")
    fields = {"status": status, "ended_at": 1.0, "published": True}  # the outbox leaves it alone
    if status == "done":
        fields["mp3_id"] = "m" * 24
    job_records.collection().update_one({"_id": job.id}, {"$set": fields})
    return job


def verified(job, request) -> dict:
    headers, body = request
    return standardwebhooks.Webhook(webhook_secret_of(job.owner)).verify(body, headers)


def test_retries_after_a_500_and_a_timeout_with_the_same_id_then_never_again(stack, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "0.5")
    with Receiver([500, ("sleep", 1.5)]) as receiver:
        job = ended_job(receiver.url)
        with pytest.raises(TransientError, match="HTTP 500"):
            deliveries.notify_webhook(job.id, "done", 0)
        assert job_records.get_job(job.id).webhook | {"at": None} == {
            "webhook_id": f"msg_{job.id}_done", "state": "retrying", "attempts": 1, "at": None,
            "status_code": 500, "error": "HTTP 500"}
        with pytest.raises(TransientError, match="timed out"):
            deliveries.notify_webhook(job.id, "done", 1)
        record = job_records.get_job(job.id).webhook
        assert (record["attempts"], record["status_code"], record["state"]) == (2, None, "retrying")
        deliveries.notify_webhook(job.id, "done", 2)
        deliveries.notify_webhook(job.id, "done", 2)  # a redelivery (say, for the email) calls nobody
        requests = receiver.wait(3)
    assert len(requests) == 3
    assert {headers["webhook-id"] for headers, _ in requests} == {f"msg_{job.id}_done"}
    assert len({body for _, body in requests}) == 1  # the same event every time
    event = verified(job, requests[-1])
    assert event["type"] == "job.done" and event["data"]["job_id"] == job.id
    assert event["data"]["link"].startswith(config.env("PUBLIC_URL") + "/links/")
    assert job_records.get_job(job.id).webhook["state"] == "delivered"


def test_the_last_attempt_gives_up_and_a_rotated_secret_signs_the_next(stack):
    with Receiver(default=503) as receiver:
        job = ended_job(receiver.url, "failed")
        old = webhook_secret_of(job.owner)
        new = rotate(job.owner)
        assert new != old and new.startswith("whsec_")
        with pytest.raises(TransientError):  # the retry policy dead-letters it: no delay is left
            deliveries.notify_webhook(job.id, "failed", len(config.retry_delays()))
        request = receiver.wait(1)[0]
    assert job_records.get_job(job.id).webhook["state"] == "failed"
    assert verified(job, request)["type"] == "job.failed"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(old).verify(request[1], request[0])


def test_a_redirect_to_a_private_address_is_not_followed(stack):
    with Receiver([("redirect", "http://10.0.0.1/steal")]) as receiver:
        job = ended_job(receiver.url, "cancelled")
        with pytest.raises(TransientError, match="redirect not followed"):
            deliveries.notify_webhook(job.id, "cancelled", 0)
        assert len(receiver.wait(1)) == 1
    record = job_records.get_job(job.id).webhook
    assert record["status_code"] == 302 and record["error"] == "redirect not followed"


@pytest.mark.parametrize("url", ["http://localhost:{port}/", "http://10.0.0.1/", "http://[::1]:{port}/",
                                 "file:///etc/passwd"])
def test_forbidden_targets_are_refused_at_delivery_without_a_retry(stack, monkeypatch, url):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "")
    with Receiver() as receiver:
        job = ended_job(url.format(port=receiver.server.server_port))
        deliveries.notify_webhook(job.id, "done", 0)  # no exception: retrying cannot help
        assert receiver.received == []
    record = job_records.get_job(job.id).webhook
    assert record["state"] == "failed" and "callback_url" in record["error"], record


def test_jobs_without_a_callback_or_deleted_are_skipped(stack):
    job = stored_job()
    deliveries.notify_webhook(job.id, "done", 0)
    deliveries.notify_webhook("no-such-job", "done", 0)
    assert job_records.get_job(job.id).webhook is None
    assert json.loads(json.dumps(deliveries.event_data(job_records.get_job(job.id))))["callback_url"] is None


@pytest.mark.parametrize("part", ["status", "headers", "body"])
def test_a_dripping_receiver_is_cut_at_the_whole_exchange_deadline(stack, monkeypatch, part):
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "1.5")
    # The receiver closes first, so on code without the deadline the attempt ends (late) instead of hanging.
    with ThreadPoolExecutor(1) as pool, Receiver(default=("drip", part, 0.5)) as receiver:
        started = time.monotonic()
        attempt = pool.submit(webhook.deliver, receiver.url, new_secret(), "msg_drip", b"{}")
        outcome = attempt.result(timeout=10)
        elapsed = time.monotonic() - started
    assert (outcome.ok, outcome.timed_out, outcome.status_code) == (False, True, None), outcome
    assert outcome.error == "timed out: no whole answer within 1.5 s"
    assert 1.5 <= elapsed < 1.5 + 2, elapsed  # a drip every 0.5 s would reset a per-read timeout forever


def test_a_tls_handshake_that_drips_is_cut_at_the_deadline_too(stack, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "1.5")
    with ThreadPoolExecutor(1) as pool, Dripper(0.5) as dripper:
        started = time.monotonic()
        url = f"https://127.0.0.1:{dripper.port}/hooks"
        attempt = pool.submit(webhook.deliver, url, new_secret(), "msg_tls", b"{}")
        outcome = attempt.result(timeout=10)
        elapsed = time.monotonic() - started
    assert (outcome.ok, outcome.timed_out) == (False, True), outcome
    assert 1.5 <= elapsed < 1.5 + 2, elapsed


def test_an_https_receiver_whose_certificate_nobody_vouches_for_is_refused(stack, tmp_path):
    """Certificates are checked with the process' one TLS client context (services/common/tls.py), made once:
    a receiver with a self-signed certificate is refused at the handshake, each time."""
    import socket
    import ssl
    import subprocess
    import threading

    from services.common import tls

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", tmp_path / "key.pem", "-out", tmp_path / "cert.pem"], check=True, capture_output=True)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    handshakes: list[str] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                server_side.wrap_socket(conn, server_side=True).close()
                handshakes.append("completed")
            except (ssl.SSLError, OSError) as exc:
                handshakes.append(type(exc).__name__)

    threading.Thread(target=serve, daemon=True).start()
    tls.client_context.cache_clear()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/hooks"
    outcomes = [webhook.deliver(url, new_secret(), f"msg_cert_{n}", b"{}") for n in range(2)]
    listener.close()
    for outcome in outcomes:
        assert not outcome.ok and "CERTIFICATE_VERIFY_FAILED" in outcome.error, outcome
    assert "completed" not in handshakes
    assert tls.client_context.cache_info().misses == 1  # one context for both connections


def announce(job) -> float:
    """Publish the job's end on the stack's mp3 queue, as the converter does; when it was sent."""
    message = FinishedMessage(job.id, job.status)
    messaging.Publisher().publish(config.env("MP3_QUEUE"), message.body(), message_id=message.message_id)
    return time.monotonic()


def wait_webhook_state(job_id: str, state: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while (job_records.get_job(job_id).webhook or {}).get("state") != state and time.monotonic() < deadline:
        time.sleep(0.2)
    return job_records.get_job(job_id).webhook


def metric(stack, name: str) -> float:
    text = requests.get(stack["metrics"]["notification"] + "/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_a_tenant_with_dripping_receivers_stalls_nobody_else(stack):
    """Tenant A's three receivers drip a byte a second (never finishing); the stack's notification worker
    (WEBHOOK_TIMEOUT_SECONDS=2) still mails and calls tenant B at once, and cuts A at the deadline."""
    deadline, tries = config.env_float("WEBHOOK_TIMEOUT_SECONDS"), 1 + len(config.retry_delays())
    deferred_before = metric(stack, "notification_webhooks_deferred_total")
    with Receiver(default=("drip", "status", 1)) as slow, Receiver() as fast:
        tenant_a = f"dripping-{new_id()}"
        a_jobs = [job_records.get_job(ended_job(slow.url, owner=tenant_a).id) for _ in range(3)]
        for job in a_jobs:
            announce(job)
        assert slow.wait(1, timeout=30)  # A's deliveries have started dripping
        b_job = job_records.get_job(ended_job(fast.url).id)
        sent = announce(b_job)
        mails = wait_mail(stack["mail"], b_job.id, timeout=30)
        email_seconds = time.monotonic() - sent
        hook = fast.wait(1, timeout=30 - email_seconds)
        webhook_seconds = time.monotonic() - sent
        print(f"B while A drips: email {email_seconds:.2f} s, webhook {webhook_seconds:.2f} s")
        assert len(mails) == 1 and email_seconds < 30
        assert len(hook) == 1 and webhook_seconds < 2 * deadline  # not queued behind A's cut attempts
        assert requests.get(stack["metrics"]["notification"] + "/healthz", timeout=10).status_code == 200
        records = [wait_webhook_state(job.id, "failed") for job in a_jobs]
        seen_by_a = len(slow.received)
    assert standardwebhooks.Webhook(webhook_secret_of(b_job.owner)).verify(hook[0][1], hook[0][0])["data"][
        "job_id"] == b_job.id
    for record in records:  # every attempt cut at the deadline, retried, then given up as the design says
        assert (record["state"], record["attempts"], record["status_code"]) == ("failed", tries, None), record
        assert record["error"] == f"timed out: no whole answer within {deadline:g} s"
    assert seen_by_a == 3 * tries
    assert all(len(mails_for(stack["mail"], job.id)) == 1 for job in a_jobs)
    assert metric(stack, "notification_webhooks_deferred_total") > deferred_before  # A's third waited its turn


def test_the_webhook_is_queued_once_however_often_its_email_is_retried(stack, monkeypatch):
    queue = f"t{uuid.uuid4().hex[:8]}.webhook"
    monkeypatch.setenv("WEBHOOK_QUEUE", queue)
    job = ended_job("http://127.0.0.1:9/hooks")
    connection = pika.BlockingConnection(messaging.connection_parameters())
    try:
        for _ in range(3):  # the mp3 message redelivered, or retried for its email
            deliveries.enqueue(FinishedMessage(job.id, "done"))
        waiting = connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        channel = connection.channel()
        for name in [queue, messaging.dead_queue(queue)] + [messaging.retry_queue(queue, d)
                                                            for d in config.retry_delays()]:
            channel.queue_delete(name)
        connection.close()
    assert waiting == 1
