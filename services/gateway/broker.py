"""The gateway's broker connections and what it publishes: new jobs (`video`) and cancels (`mp3`: ended jobs)."""
from __future__ import annotations

import logging

from services.common import config, messages, messaging
from services.common.jobs import Status

log = logging.getLogger(__name__)
# Shared by the request threads and the outbox relay, each checked out for one use (pika
# connections are not thread-safe); the idle ones keep their heartbeats serviced.
publishers = messaging.PublisherPool()


def ready() -> None:
    publishers.check(config.env("VIDEO_QUEUE"))


def announce_cancel(job_id: str) -> None:
    """Tell the finished-jobs queue (webhooks) that a job was cancelled; a broker outage only loses
    this courtesy, never the cancel itself, which the job document holds."""
    try:
        with publishers.publisher() as publisher:
            messages.publish_finished(publisher, job_id, Status.CANCELLED)
    except messaging.PublishError as exc:
        log.warning("cancel not announced", extra={"job_id": job_id, "error": str(exc)})
