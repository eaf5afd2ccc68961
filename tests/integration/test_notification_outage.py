"""One email per job when MongoDB goes away between the SMTP server's "accepted" and the record.

A private MongoDB stand-in (a real nx-27017 process) is stopped by the SMTP server itself, right
as it accepts the message: the exact window that once duplicated an email.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from services.common.messaging import TransientError
from services.common.storage import connection as mongo_connection
from services.common.storage import job_records, notification_ledger
from services.notification import emails
from devkit.net import free_port
from devkit.privstack import port_open, wait_until
from tests.helpers import stored_job


class MongoStandIn:
    """A MongoDB stand-in of this test's own, stoppable and restartable on the same data."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = folder, free_port(), None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        # Its own pid file: without one the stand-in refuses to start while any other instance runs.
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "nx-27017"), "--data-dir", str(self.folder),
                                      "--host", "127.0.0.1", "-p", str(self.port),
                                      "--pid-file", str(self.folder / "nx.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), "MongoDB stand-in", 30, 0.1)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class OutageInbox:
    """Accepts each message, but first takes MongoDB away for `down_for` seconds."""

    def __init__(self, mongo: MongoStandIn, down_for: float):
        self.mongo, self.down_for, self.messages = mongo, down_for, []

    async def handle_DATA(self, server, session, envelope):
        if self.down_for:
            self.mongo.stop()
            threading.Timer(self.down_for, self.mongo.start).start()
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def private_mongo(tmp_path, monkeypatch):
    mongo = MongoStandIn(tmp_path / "mongo")
    mongo.start()
    monkeypatch.setenv("MONGO_URI", f"mongodb://127.0.0.1:{mongo.port}")
    monkeypatch.setenv("MONGO_TIMEOUT_MS", "500")
    monkeypatch.setattr(mongo_connection, "_client", None)
    yield mongo
    mongo_connection.client().close()
    if mongo.proc.poll() is None:
        mongo.stop()


def _smtp(monkeypatch, inbox) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(controller.port))
    return controller


def _done_job() -> str:
    job = stored_job().to_doc()
    job_records.collection().update_one({"_id": job["_id"]}, {"$set": {"status": "done", "mp3_id": "m" * 24}})
    return job["_id"]


def _record(job_id: str) -> dict:
    return notification_ledger.collection().find_one({"_id": f"{job_id}:done"})


def test_brief_outage_after_sending_is_bridged_in_process(private_mongo, monkeypatch):
    inbox = OutageInbox(private_mongo, down_for=3)
    controller = _smtp(monkeypatch, inbox)
    try:
        job_id = _done_job()
        started = time.monotonic()
        emails.notify(job_id, "done")  # returns only once the record is written
        assert time.monotonic() - started >= 3
        inbox.down_for = 0
        emails.notify(job_id, "done")  # the redelivery
        assert len(inbox.messages) == 1
        assert _record(job_id)["state"] == "sent"
    finally:
        controller.stop()


def test_longer_outage_retries_the_message_without_mailing_again(private_mongo, monkeypatch):
    monkeypatch.setattr(emails, "RECORD_RETRY_SECONDS", 1.0)
    inbox = OutageInbox(private_mongo, down_for=4)
    controller = _smtp(monkeypatch, inbox)
    try:
        job_id = _done_job()
        with pytest.raises(TransientError, match="email sent, its record not written yet"):
            emails.notify(job_id, "done")
        inbox.down_for = 0
        wait_until(lambda: port_open(private_mongo.port), "MongoDB back", 20, 0.1)
        emails.notify(job_id, "done")  # the retry, after the back-off
        assert len(inbox.messages) == 1
        assert _record(job_id)["state"] == "sent"
    finally:
        controller.stop()


def test_waits_for_another_workers_intent_and_takes_over_a_dead_ones(private_mongo, monkeypatch):
    inbox = OutageInbox(private_mongo, down_for=0)
    controller = _smtp(monkeypatch, inbox)
    try:
        sent_elsewhere, abandoned = _done_job(), _done_job()
        for job_id in (sent_elsewhere, abandoned):
            notification_ledger.collection().insert_one({"_id": f"{job_id}:done", "state": "sending", "worker": "other",
                                                "until": time.time() + 2})
        # The other worker finishes while we wait: nothing is sent again.
        threading.Timer(1, lambda: notification_ledger.collection().update_one(
            {"_id": f"{sent_elsewhere}:done"}, {"$set": {"state": "sent"}})).start()
        emails.notify(sent_elsewhere, "done")
        assert inbox.messages == []
        # The other worker died: after its lease the email goes out, once.
        started = time.monotonic()
        emails.notify(abandoned, "done")
        assert len(inbox.messages) == 1 and time.monotonic() - started > 0.5
        assert _record(abandoned)["state"] == "sent" and _record(abandoned)["worker"] == emails.WORKER_ID
    finally:
        controller.stop()
