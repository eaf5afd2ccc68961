"""The one owner of stored data: only modules of this package talk to MongoDB.

One module per kind of record: `files` (videos and results in GridFS), `job_records` (jobs, with the
outbox's, the janitor's and the quotas' queries), `uploads` (uploads in progress, multipart and tus),
`idempotency_keys`, `presets` (users' own output presets), `shares` (release leases of shared results),
`webhook_secrets`, `quota_accounts`, `tombstones` (deleted jobs), `janitor_stats`, `notification_ledger`;
`connection` (the client, ids) and `errors` (what callers catch). Callers import the record modules; this
module only sets the database up.
"""
from __future__ import annotations

from . import files, job_records, presets, uploads
from .connection import ping

__all__ = ["prepare", "ping"]


def prepare() -> None:
    """Indexes, and records of older versions moved to where this version reads them."""
    job_records.ensure_indexes()
    uploads.ensure_indexes()
    presets.ensure_indexes()
    for bucket in (files.videos(), files.results()):  # the chunk index every windowed read relies on
        bucket.ensure_indexes()
    uploads.adopt_legacy_tus()
