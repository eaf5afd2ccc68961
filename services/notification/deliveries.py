"""Webhooks of ended jobs: at-least-once, the same webhook-id on every retry, never twice once delivered.

They run apart from the emails: the email handler only publishes a message on WEBHOOK_QUEUE
(`enqueue`), and the webhook consumer (`handle`) makes WEBHOOK_CONCURRENCY deliveries at once,
at most WEBHOOK_MAX_PER_TENANT of one user (more are Deferred), each bounded by the
whole-exchange deadline of webhook.py. So a user's slow receivers delay neither anyone's email
nor other users' webhooks.

The notification ledger (services/common/storage/notification_ledger.py) records each job's webhook:
`queued` once it is on WEBHOOK_QUEUE (a retried email does not queue it again), `delivered` once a
receiver took it (a redelivered message does not call the receiver again); a failed attempt raises
TransientError and the message goes through the retry queues, then to the dead-letter queue.
Each attempt is shown on the job (`webhook`: state, attempts, time, status code or error).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import datetime, timezone

from opentelemetry.trace import SpanKind

from services.common import config, job_view, messaging, telemetry
from services.common.jobs import Job, Status
from services.common.messages import FinishedMessage
from services.common.messaging import Deferred, Delivery, PublishError, TransientError
from services.common.storage import job_records, notification_ledger
from services.common.storage.errors import StorageError
from services.common.webhook_secrets import webhook_secret_of

from . import metrics, webhook

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)
# Publishes the webhook messages from the email handler's thread (its consumer keeps it alive).
PUBLISHER = messaging.Publisher()


class TenantSlots:
    """Webhook deliveries in progress per user in this process: at most WEBHOOK_MAX_PER_TENANT each."""

    def __init__(self):
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self, owner: str):
        with self._lock:
            if self._counts.get(owner, 0) >= max(1, config.env_int("WEBHOOK_MAX_PER_TENANT")):
                metrics.WEBHOOKS_DEFERRED.inc()
                raise Deferred("this user's other webhooks are in progress")
            self._counts[owner] = self._counts.get(owner, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._counts[owner] -= 1
                if not self._counts[owner]:
                    del self._counts[owner]


SLOTS = TenantSlots()


def webhook_id(job_id: str, status: str) -> str:
    return f"msg_{job_id}_{status}"  # stable per event: receivers dedupe retries by it


def enqueue(message: FinishedMessage) -> None:
    """Publish the job's webhook delivery on its own queue, once: not again when the email is retried."""
    key = notification_ledger.ledger_key(message.job_id, message.status, webhook=True)
    if notification_ledger.webhook_known(key):  # queued or delivered already
        return
    job = job_records.get_job(message.job_id)
    if job is None or not job.callback_url or job.status != message.status:
        return
    try:
        PUBLISHER.publish(config.env("WEBHOOK_QUEUE"), message.body(), message_id=key)
    except PublishError as exc:
        raise TransientError(f"webhook not queued: {exc}") from None
    try:
        notification_ledger.record_webhook_queued(key, message.job_id)
    except StorageError:
        pass  # delivered meanwhile, or not recorded: a retried email queues it again (same webhook-id)


def handle(delivery: Delivery) -> None:
    """A message of WEBHOOK_QUEUE: one delivery attempt."""
    message = FinishedMessage.parse(delivery)
    token = telemetry.job_context(message.job_id)
    try:
        notify_webhook(message.job_id, message.status, delivery.retries)
    finally:
        telemetry.detach(token)


def notify_webhook(job_id: str, status: Status, retries: int) -> None:
    """POST the job's end to its callback_url once (if it has one); TransientError to try again later."""
    if notification_ledger.webhook_delivered(notification_ledger.ledger_key(job_id, status, webhook=True)):
        metrics.WEBHOOKS.labels("duplicate").inc()
        return
    job = job_records.get_job(job_id)
    if job is None or not job.callback_url or job.status != status:
        return  # deleted since, never asked for, or moved on (expired): nothing to call
    hook_id = webhook_id(job_id, status)
    body = webhook.event_body(f"job.{status}", event_data(job))
    with SLOTS.take(job.owner):
        outcome, seconds = _attempt(job, hook_id, body, retries)
    last = retries >= len(config.retry_delays())
    state = "delivered" if outcome.ok else ("failed" if outcome.refused or last else "retrying")
    earlier = job.webhook or {}
    attempts = (earlier.get("attempts", 0) if earlier.get("webhook_id") == hook_id else 0) + 1
    _record(job, hook_id, state, attempts, outcome)
    log.info("webhook attempt", extra={"job_id": job_id, "webhook_id": hook_id, "state": state,
                                        "status_code": outcome.status_code, "error": outcome.error,
                                        "duration_seconds": round(seconds, 3), "timed_out": outcome.timed_out})
    if outcome.ok:
        metrics.WEBHOOKS.labels("delivered").inc()
        _mark_delivered(job_id, status)
    elif outcome.refused:  # the address is forbidden now: retrying cannot make it allowed
        metrics.WEBHOOKS.labels("refused").inc()
    else:
        metrics.WEBHOOKS.labels("gave_up" if last else "failed").inc()
        raise TransientError(f"webhook failed: {outcome.error}")


def _attempt(job: Job, hook_id: str, body: bytes, retries: int) -> tuple[webhook.Outcome, float]:
    """One signed POST in its span, counted in flight and timed; the outcome and its seconds."""
    secret = webhook_secret_of(job.owner)
    started = time.monotonic()
    with tracer.start_as_current_span("webhook deliver", kind=SpanKind.CLIENT, attributes={
            "vid2mp3.webhook.id": hook_id, "vid2mp3.retries": retries}) as span, \
            metrics.WEBHOOKS_IN_FLIGHT.track_inprogress():
        outcome = webhook.deliver(job.callback_url, secret, hook_id, body)
        if outcome.status_code is not None:
            span.set_attribute("http.response.status_code", outcome.status_code)
        span.set_attribute("vid2mp3.webhook.timed_out", outcome.timed_out)
    seconds = time.monotonic() - started
    metrics.WEBHOOK_DURATION.observe(seconds)
    if outcome.timed_out:
        metrics.WEBHOOK_TIMEOUTS.inc()
    return outcome, seconds


def event_data(job: Job) -> dict:
    """The job's view, without its own delivery record (the body stays the same on every retry)."""
    data = job_view.view(job)
    data.pop("webhook", None)
    return data


def _record(job: Job, hook_id: str, state: str, attempts: int, outcome: webhook.Outcome) -> None:
    at = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    attempt = {"webhook_id": hook_id, "state": state, "attempts": attempts, "at": at,
               "status_code": outcome.status_code, "error": outcome.error}
    try:
        job_records.record_webhook(job.id, attempt)
    except StorageError as exc:  # the record is for people; the delivery's outcome stands
        log.warning("webhook attempt not recorded", extra={"job_id": job.id, "error": type(exc).__name__})


def _mark_delivered(job_id: str, status: str) -> None:
    try:
        notification_ledger.record_webhook_delivered(notification_ledger.ledger_key(job_id, status, webhook=True),
                                                     job_id)
    except StorageError:
        pass  # at-least-once: a redelivery may call the receiver again, with the same webhook-id
