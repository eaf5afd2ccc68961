"""The notification worker against a real SMTP server (aiosmtpd) and the MongoDB stand-in."""
from __future__ import annotations

import threading
import time
import uuid

import pika
import pytest
import requests
from aiosmtpd.controller import Controller

from services.common import config, messaging, metrics_http
from services.common.messaging import PermanentError, TransientError
from services.common.storage import job_records, notification_ledger
from services.notification import __main__ as notification_main
from services.notification import emails
from tests.helpers import stored_job
from devkit.net import free_port


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    yield inbox, controller
    controller.stop()


def done_job() -> dict:
    job = stored_job().to_doc()
    job_records.collection().update_one({"_id": job["_id"]}, {"$set": {"status": "done", "mp3_id": "m" * 24}})
    return job


def test_sends_once_even_when_redelivered(stack, smtp):
    inbox, _ = smtp
    job = done_job()
    emails.notify(job["_id"], "done")
    emails.notify(job["_id"], "done")
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.rcpt_tos == ["owner@example.com"]
    text = envelope.content.decode()
    assert job["_id"] in text and "m" * 24 in text


def test_smtp_outage_is_transient_and_nothing_is_recorded(stack, smtp, monkeypatch):
    inbox, controller = smtp
    job = done_job()
    monkeypatch.setenv("SMTP_PORT", str(free_port()))  # nobody listens there
    with pytest.raises(TransientError, match="SMTP failed"):
        emails.notify(job["_id"], "done")
    assert notification_ledger.collection().find_one({"_id": f"{job['_id']}:done"}) is None
    monkeypatch.setenv("SMTP_PORT", str(controller.port))
    emails.notify(job["_id"], "done")
    assert len(inbox.messages) == 1


def test_unknown_job_and_status_mismatch_are_permanent_but_a_deleted_job_is_dropped(stack, smtp):
    inbox, _ = smtp
    with pytest.raises(PermanentError, match="unknown job"):
        emails.notify("0" * 24, "done")
    deleted = done_job()
    job_records.delete_job(deleted["_id"])
    emails.notify(deleted["_id"], "done")  # deleted by its owner since: no email, not dead-lettered
    assert inbox.messages == []
    job = done_job()
    with pytest.raises(PermanentError, match="not failed"):
        emails.notify(job["_id"], "failed")


@pytest.fixture
def own_queues(monkeypatch):
    """The notification worker's two queues under names of this test (the stack's worker consumes its own)."""
    names = {name: f"t{uuid.uuid4().hex[:8]}.{name.lower()}" for name in ("MP3_QUEUE", "WEBHOOK_QUEUE")}
    for setting, name in names.items():
        monkeypatch.setenv(setting, name)
    yield names
    connection = pika.BlockingConnection(messaging.connection_parameters())
    channel = connection.channel()
    for name in names.values():
        retries = [messaging.retry_queue(name, d) for d in config.retry_delays()]
        for queue in [name, messaging.dead_queue(name), *retries]:
            channel.queue_delete(queue)
    connection.close()


def test_liveness_fails_while_a_handler_is_stuck_past_its_deadline(monkeypatch, own_queues):
    monkeypatch.setenv("NOTIFICATION_HANDLER_DEADLINE_SECONDS", "1")
    emails, webhooks = notification_main.consumers()
    entered, release = threading.Event(), threading.Event()

    def stuck(delivery):  # stands for any handler that stops making progress
        entered.set()
        release.wait(60)

    webhooks.handler = stuck
    server = metrics_http.start(free_port(), {"/healthz": webhooks.healthy})
    healthz = f"http://127.0.0.1:{server.server_port}/healthz"
    threading.Thread(target=webhooks.run, daemon=True).start()
    try:
        assert webhooks.connected.wait(10) and requests.get(healthz, timeout=5).status_code == 200
        messaging.Publisher().publish(own_queues["WEBHOOK_QUEUE"], {"job_id": "j", "status": "done"})
        assert entered.wait(10)
        deadline = time.monotonic() + 15
        while webhooks.healthy() and time.monotonic() < deadline:
            time.sleep(0.1)  # the deadline is a duration: nothing to await but time
        assert requests.get(healthz, timeout=5).status_code == 503
        assert webhooks.oldest_handler_seconds() > 1 and emails.handler_deadline == 1
        release.set()
        deadline = time.monotonic() + 15
        while not webhooks.healthy() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert requests.get(healthz, timeout=5).status_code == 200  # the handler finished: alive again
    finally:
        release.set()
        webhooks.stop()
        server.shutdown()
