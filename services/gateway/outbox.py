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

from pymongo import ReturnDocument

from services.common import config, messages, messaging, storage
from services.common.jobs import Job, Status

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
    _mark_published(job.id)


def relay_once(publisher: messaging.Publisher) -> int:
    """Publish every pending job once; returns how many were published."""
    published = 0
    for job in _unpublished(older_than=time.time() - GRACE_SECONDS):
        claimed = _claim(job.id, LEASE_SECONDS)
        if claimed is None:
            continue
        publish_job(publisher, claimed)
        metrics.OUTBOX_PUBLISHED.inc()
        published += 1
        log.info("outbox published job", extra={"job_id": job.id})
    metrics.OUTBOX_BACKLOG.set(_count_unpublished())
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


# The outbox's own queries on the jobs collection: which stored jobs still wait for their message.
def _unpublished(older_than: float, limit: int = 100) -> list[Job]:
    found = storage.jobs().find({"published": False, "created": {"$lt": older_than}})
    found = found.sort("created", 1).limit(limit)
    return [Job.from_doc(doc) for doc in found]


def _claim(job_id: str, lease_seconds: float) -> Job | None:
    """Take an unpublished job, unless another gateway is publishing it now."""
    now = time.time()
    doc = storage.jobs().find_one_and_update({"_id": job_id, "published": False, "outbox_lease": {"$lt": now}},
                                             {"$set": {"outbox_lease": now + lease_seconds}},
                                             return_document=ReturnDocument.AFTER)
    return Job.from_doc(doc) if doc else None


def _mark_published(job_id: str) -> None:
    storage.jobs().update_one({"_id": job_id}, {"$set": {"published": True}})


def _count_unpublished() -> int:
    return storage.jobs().count_documents({"published": False})
