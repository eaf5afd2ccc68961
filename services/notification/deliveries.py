"""Webhooks of ended jobs: at-least-once, the same webhook-id on every retry, never twice once delivered.

A delivered webhook is recorded in the notifications ledger (`<job>:<status>:webhook`), so a
message retried for its email does not call the receiver again; a failed attempt raises
TransientError and the message goes through the retry queues, then to the dead-letter queue.
Each attempt is shown on the job (`webhook`: state, attempts, time, status code or error).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pymongo.errors
from opentelemetry.trace import SpanKind

from services.common import config, jobs, storage, telemetry
from services.common.jobs import Job, Status
from services.common.messaging import TransientError
from services.common.webhook_secrets import webhook_secret_of

from . import metrics, webhook

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)


def webhook_id(job_id: str, status: str) -> str:
    return f"msg_{job_id}_{status}"  # stable per event: receivers dedupe retries by it


def _ledger_key(job_id: str, status: str) -> str:
    return f"{job_id}:{status}:webhook"


def notify_webhook(job_id: str, status: Status, retries: int) -> None:
    """POST the job's end to its callback_url once (if it has one); TransientError to try again later."""
    if storage.notifications().find_one({"_id": _ledger_key(job_id, status)}, {"_id": 1}):
        metrics.WEBHOOKS.labels("duplicate").inc()
        return
    job = storage.get_job(job_id)
    if job is None or not job.callback_url or job.status != status:
        return  # deleted since, never asked for, or moved on (expired): nothing to call
    hook_id = webhook_id(job_id, status)
    body = webhook.event_body(f"job.{status}", event_data(job))
    with tracer.start_as_current_span("webhook deliver", kind=SpanKind.CLIENT, attributes={
            "vid2mp3.webhook.id": hook_id, "vid2mp3.retries": retries}) as span:
        outcome = webhook.deliver(job.callback_url, webhook_secret_of(job.owner), hook_id, body)
        if outcome.status_code is not None:
            span.set_attribute("http.response.status_code", outcome.status_code)
    last = retries >= len(config.retry_delays())
    state = "delivered" if outcome.ok else ("failed" if outcome.refused or last else "retrying")
    earlier = job.webhook or {}
    attempts = (earlier.get("attempts", 0) if earlier.get("webhook_id") == hook_id else 0) + 1
    _record(job, hook_id, state, attempts, outcome)
    log.info("webhook attempt", extra={"job_id": job_id, "webhook_id": hook_id, "state": state,
                                        "status_code": outcome.status_code, "error": outcome.error})
    if outcome.ok:
        metrics.WEBHOOKS.labels("delivered").inc()
        _mark_delivered(job_id, status)
    elif outcome.refused:  # the address is forbidden now: retrying cannot make it allowed
        metrics.WEBHOOKS.labels("refused").inc()
    else:
        metrics.WEBHOOKS.labels("gave_up" if last else "failed").inc()
        raise TransientError(f"webhook failed: {outcome.error}")


def event_data(job: Job) -> dict:
    """The job's view, without its own delivery record (the body stays the same on every retry)."""
    data = jobs.view(job)
    data.pop("webhook", None)
    return data


def _record(job: Job, hook_id: str, state: str, attempts: int, outcome: webhook.Outcome) -> None:
    at = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    attempt = {"webhook_id": hook_id, "state": state, "attempts": attempts, "at": at,
               "status_code": outcome.status_code, "error": outcome.error}
    try:
        storage.record_webhook(job.id, attempt)
    except pymongo.errors.PyMongoError as exc:  # the record is for people; the delivery's outcome stands
        log.warning("webhook attempt not recorded", extra={"job_id": job.id, "error": type(exc).__name__})


def _mark_delivered(job_id: str, status: str) -> None:
    try:
        storage.notifications().update_one({"_id": _ledger_key(job_id, status)},
                                           {"$set": {"state": "delivered", "job_id": job_id}}, upsert=True)
    except pymongo.errors.PyMongoError:
        pass  # at-least-once: a redelivery may call the receiver again, with the same webhook-id
