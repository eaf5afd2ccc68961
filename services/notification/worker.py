"""Send one email per finished job (done or failed), once.

A sent email is recorded in the notifications collection before the message is acked,
so a redelivered or duplicated message is not mailed twice. SMTP failures are retried
with back-off through the retry queues and never dropped.
"""
from __future__ import annotations

import logging
import smtplib
import time

import pymongo.errors
from opentelemetry.trace import SpanKind

from services.common import config, metrics, storage, telemetry
from services.common.messaging import Delivery, PermanentError, TransientError

from . import mailer

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)


def handle(delivery: Delivery) -> None:
    message = delivery.json()
    job_id, status = message.get("job_id"), message.get("status")
    if not isinstance(job_id, str) or status not in ("done", "failed"):
        raise PermanentError("message needs a job_id and a status of done or failed")
    token = telemetry.job_context(job_id)
    try:
        notify(job_id, status)
    finally:
        telemetry.detach(token)


def notify(job_id: str, status: str) -> None:
    key = f"{job_id}:{status}"
    if storage.notifications().find_one({"_id": key}):
        metrics.EMAILS.labels("duplicate").inc()
        log.info("email already sent", extra={"job_id": job_id, "status": status})
        return
    job = storage.get_job(job_id)
    if job is None:
        raise PermanentError(f"unknown job {job_id}")
    if job["status"] != status:
        raise PermanentError(f"job {job_id} is {job['status']}, not {status}")
    if not job.get("owner_email"):
        raise PermanentError(f"job {job_id} has no owner email")
    email = mailer.compose(job, status)
    with tracer.start_as_current_span("smtp send", kind=SpanKind.CLIENT, attributes={
        "server.address": config.env("SMTP_HOST"), "server.port": config.env_int("SMTP_PORT"),
        "vid2mp3.email.kind": status,
    }) as span:
        try:
            mailer.send(email)
        except (smtplib.SMTPException, OSError) as exc:
            metrics.EMAILS.labels("failed").inc()
            telemetry.record_error(span, exc)
            raise TransientError(f"SMTP failed: {type(exc).__name__}: {exc}") from None
    metrics.EMAILS.labels("sent").inc()
    try:
        storage.notifications().insert_one({"_id": key, "job_id": job_id, "status": status, "sent_at": time.time()})
    except pymongo.errors.DuplicateKeyError:
        pass
    log.info("email sent", extra={"job_id": job_id, "status": status})
