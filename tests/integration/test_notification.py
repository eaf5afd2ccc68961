"""The notification worker against a real SMTP server (aiosmtpd) and the MongoDB stand-in."""
from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from services.common import storage
from tests.helpers import stored_job
from services.common.messaging import PermanentError, TransientError
from services.notification import worker
from tests.support.net import free_port


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
    storage.jobs().update_one({"_id": job["_id"]}, {"$set": {"status": "done", "mp3_id": "m" * 24}})
    return job


def test_sends_once_even_when_redelivered(stack, smtp):
    inbox, _ = smtp
    job = done_job()
    worker.notify(job["_id"], "done")
    worker.notify(job["_id"], "done")
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
        worker.notify(job["_id"], "done")
    assert storage.notifications().find_one({"_id": f"{job['_id']}:done"}) is None
    monkeypatch.setenv("SMTP_PORT", str(controller.port))
    worker.notify(job["_id"], "done")
    assert len(inbox.messages) == 1


def test_unknown_job_and_status_mismatch_are_permanent_but_a_deleted_job_is_dropped(stack, smtp):
    inbox, _ = smtp
    with pytest.raises(PermanentError, match="unknown job"):
        worker.notify("0" * 24, "done")
    deleted = done_job()
    storage.delete_job(deleted["_id"])
    worker.notify(deleted["_id"], "done")  # deleted by its owner since: no email, not dead-lettered
    assert inbox.messages == []
    job = done_job()
    with pytest.raises(PermanentError, match="not failed"):
        worker.notify(job["_id"], "failed")
