"""Send one email per finished job (done or failed): never lost, never sent twice (webhooks: deliveries.py).

Each email has a record in the notification ledger (services/common/storage/notification_ledger.py),
keyed by job and outcome:
1. before sending, this worker records its intent (`sending`, with a short lease);
2. it sends over SMTP; a failure releases the intent and the message is retried with back-off;
3. it records `sent`, retrying in-process while MongoDB is briefly down, so a redelivery finds it.

A redelivery that finds `sent` does nothing; one that finds another live worker's intent waits
for that worker. Only a crash between the SMTP server's "accepted" and step 3 can repeat an
email (after the lease); its stable Message-ID lets mail systems drop that rare duplicate.
"""
from __future__ import annotations

import logging
import os
import smtplib
import time
import uuid

from opentelemetry.trace import SpanKind

from services.common import config, telemetry
from services.common.jobs import CONVERTER_OUTCOMES, Status
from services.common.messages import FinishedMessage
from services.common.messaging import Delivery, PermanentError, TransientError
from services.common.storage import job_records, notification_ledger, tombstones
from services.common.storage.errors import StorageError

from . import deliveries, mailer, metrics

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)
WORKER_ID = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# How long the `sent` record is retried in-process (a MongoDB restart or fail-over takes seconds).
RECORD_RETRY_SECONDS = 60.0
# Sent by this process, `sent` record not written yet: a redelivery here records it instead of resending.
_sent_unrecorded: set[str] = set()


def handle(delivery: Delivery) -> None:
    """The email (done, failed: exactly once) of a job, and its webhook put on WEBHOOK_QUEUE (every end).

    Both are tried on every delivery, each skipping what its ledger says is done, so a retry for
    one never repeats the other; a transient failure of either retries the message. No user's URL
    is called here: the webhook consumer (deliveries.handle) does that, apart from the emails."""
    message = FinishedMessage.parse(delivery)
    token = telemetry.job_context(message.job_id)
    try:
        failures = []
        steps = [lambda: deliveries.enqueue(message)]
        if message.status in CONVERTER_OUTCOMES:  # a cancel is the user's own doing: no email
            steps.insert(0, lambda: notify(message.job_id, message.status))
        for step in steps:
            try:
                step()
            except Exception as exc:
                failures.append(exc)
        # A retry helps whatever is transient; a permanent failure only once nothing else needs it.
        failures.sort(key=lambda exc: isinstance(exc, PermanentError))
        if failures:
            raise failures[0]
    finally:
        telemetry.detach(token)


def notify(job_id: str, status: Status) -> None:
    key = notification_ledger.ledger_key(job_id, Status(status))
    if key in _sent_unrecorded:  # a retry after the `sent` record could not be written
        _record_sent(key)
        return
    if _already_sent(key):
        metrics.EMAILS.labels("duplicate").inc()
        log.info("email already sent", extra={"job_id": job_id, "status": status})
        return
    job = job_records.get_job(job_id)
    if job is None:
        if tombstones.was_deleted(job_id):  # by its owner since it ended: nobody to tell any more
            log.info("job deleted, no email", extra={"job_id": job_id, "status": status})
            return
        raise PermanentError(f"unknown job {job_id}")
    if job.status != status:
        raise PermanentError(f"job {job_id} is {job.status}, not {status}")
    if not job.owner_email:
        raise PermanentError(f"job {job_id} has no owner email")
    if not _claim(key, job_id, status):
        metrics.EMAILS.labels("duplicate").inc()
        return  # another worker sent it while we waited
    _send(mailer.compose(job, status), key, status)
    _sent_unrecorded.add(key)
    metrics.EMAILS.labels("sent").inc()
    _record_sent(key)
    log.info("email sent", extra={"job_id": job_id, "status": status})


def _already_sent(key: str) -> bool:
    return notification_ledger.email_sent(key)


def _lease_seconds() -> float:
    # Covers one SMTP conversation: connect, data, quit, each bounded by the SMTP timeout.
    return 3 * config.env_float("SMTP_TIMEOUT_SECONDS")


def _claim(key: str, job_id: str, status: str) -> bool:
    """Record the intent to send; waits while another live worker holds it. False once it is sent."""
    while True:
        taken = notification_ledger.claim_email(key, job_id, status, WORKER_ID, _lease_seconds())
        if taken is not None:
            return taken
        time.sleep(0.5)


def _send(email, key: str, status: str) -> None:
    with tracer.start_as_current_span("smtp send", kind=SpanKind.CLIENT, attributes={
        "server.address": config.env("SMTP_HOST"), "server.port": config.env_int("SMTP_PORT"),
        "vid2mp3.email.kind": status,
    }) as span:
        try:
            mailer.send(email)
        except (smtplib.SMTPException, OSError) as exc:
            metrics.EMAILS.labels("failed").inc()
            telemetry.record_error(span, exc)
            _release(key)
            raise TransientError(f"SMTP failed: {type(exc).__name__}: {exc}") from None


def _release(key: str) -> None:
    """Drop our intent after a failed send, so the retry need not wait for the lease (best effort)."""
    try:
        notification_ledger.drop_email_intent(key, WORKER_ID)
    except StorageError:
        pass  # the retry comes back to a record of ours, which we may take again


def _record_sent(key: str) -> None:
    """Write `sent`, retrying while MongoDB is down; past the window the message is retried later."""
    deadline, pause = time.monotonic() + RECORD_RETRY_SECONDS, 0.5
    while True:
        try:
            notification_ledger.record_email_sent(key)
            _sent_unrecorded.discard(key)
            return
        except StorageError as exc:
            if time.monotonic() > deadline:
                raise TransientError(f"email sent, its record not written yet: {type(exc).__name__}") from None
            log.warning("recording a sent email failed, retrying", extra={"key": key, "error": type(exc).__name__})
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
