"""Outbox relay: publishes jobs that were stored but whose message the broker did not confirm.

The upload path publishes at once; this catches what it could not (broker down, gateway
killed between the two steps). Each job's stored trace context is reused, so a late
publish still belongs to the upload's trace. Several gateways may run it: a short lease
on each job keeps them from publishing the same one at the same time, and the converter
ignores any duplicate anyway.
"""
from __future__ import annotations

import logging
import threading
import time

from services.common import config, messages, messaging
from services.common.jobs import Job, Status
from services.common.storage import job_records

from . import metrics

log = logging.getLogger(__name__)

GRACE_SECONDS = 10  # give the upload request itself time to publish first
LEASE_SECONDS = 30


def publish_job(publisher: messaging.Publisher, job: Job) -> None:
    """A new job's message: to the converter, or for a reused job (done already) only its email."""
    if job.reused:
        messages.publish_finished(publisher, job.id, Status.DONE, carrier=job.trace)
    else:
        messages.publish_video(publisher, job.id, carrier=job.trace)
    job_records.mark_published(job.id)


def relay_once(publisher: messaging.Publisher) -> int:
    """Publish every pending job once; returns how many were published."""
    published = 0
    for job in job_records.unpublished(older_than=time.time() - GRACE_SECONDS):
        claimed = job_records.claim_publishing(job.id, LEASE_SECONDS)
        if claimed is None:
            continue
        publish_job(publisher, claimed)
        metrics.OUTBOX_PUBLISHED.inc()
        published += 1
        log.info("outbox published job", extra={"job_id": job.id})
    metrics.OUTBOX_BACKLOG.set(job_records.count_unpublished())
    return published


class OutboxRelay(threading.Thread):
    def __init__(self, publishers: messaging.PublisherPool | None = None, interval: float | None = None):
        super().__init__(name="outbox-relay", daemon=True)
        self.interval = interval if interval is not None else config.env_float("OUTBOX_INTERVAL_SECONDS")
        # A pooled publisher: its connection's heartbeats are serviced between rounds, however long.
        self.publishers = publishers or messaging.PublisherPool()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.publishers.publisher() as publisher:
                try:
                    relay_once(publisher)
                except Exception as exc:  # broker or MongoDB down: try again next round
                    log.warning("outbox round failed", extra={"error": f"{type(exc).__name__}: {exc}"})
                    publisher.close()
