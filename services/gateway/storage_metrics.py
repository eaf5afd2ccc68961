"""What storage holds and what the janitor removed, as metrics of the gateway.

The janitor runs as a CronJob whose process is gone before any scrape, so it leaves its totals in
storage (services/common/storage/janitor_stats.py); the gateway (always running) exposes them.
Every gateway replica shows the same values: dashboards and alerts take max(), not sum(), across replicas.
"""
from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from services.common import config, metrics
from services.common.storage import janitor_stats, uploads as upload_records
from services.common.storage.errors import StorageError

CACHE_SECONDS = 10  # scrapes are frequent; the janitor writes once a round


class StorageCollector:
    def __init__(self):
        self._stats: dict = {}
        self._read_at = 0.0

    def _read(self) -> dict:
        if time.monotonic() - self._read_at > CACHE_SECONDS:
            try:
                self._stats = dict(janitor_stats.latest())
                # Counted here, not per process: any replica may hold any upload's next PATCH.
                self._stats["tus_in_progress"] = upload_records.count_tus_in_progress()
            except StorageError:
                self._stats = {}  # MongoDB down: no storage figures this scrape, the rest still works
            self._read_at = time.monotonic()
        return self._stats

    def collect(self):
        capacity = GaugeMetricFamily("vid2mp3_storage_capacity_bytes",
                                     "Storage the deployment has for videos and results")
        capacity.add_metric([], config.env_float("STORAGE_CAPACITY_BYTES"))
        yield capacity
        stats = self._read()
        if not stats:
            return
        stored_bytes = GaugeMetricFamily("vid2mp3_storage_bytes", "Bytes stored, by kind", labels=["kind"])
        stored_files = GaugeMetricFamily("vid2mp3_storage_files", "Files stored, by kind", labels=["kind"])
        for kind, sizes in stats.get("stored", {}).items():
            stored_bytes.add_metric([kind], sizes.get("bytes", 0))
            stored_files.add_metric([kind], sizes.get("files", 0))
        removed = CounterMetricFamily("vid2mp3_storage_removed_files", "Files the janitor removed, by reason",
                                      labels=["reason"])
        for reason, count in {"tus_expired": 0, **stats.get("removed", {})}.items():
            removed.add_metric([reason], count)
        expired = CounterMetricFamily("vid2mp3_jobs_expired", "Jobs whose files retention removed")
        expired.add_metric([], stats.get("expired", 0))
        uploads = GaugeMetricFamily("vid2mp3_storage_uploads_in_progress", "Videos being received right now")
        uploads.add_metric([], stats.get("uploads_in_progress", 0))
        last_run = GaugeMetricFamily("vid2mp3_janitor_last_run_timestamp_seconds",
                                     "When the janitor last finished a round")
        last_run.add_metric([], stats.get("last_run", 0))
        tus = GaugeMetricFamily("vid2mp3_tus_uploads_in_progress",
                                "Resumable (tus) uploads created and not finished yet")
        tus.add_metric([], stats.get("tus_in_progress", 0))
        yield from (stored_bytes, stored_files, removed, expired, uploads, last_run, tus)


_registered = False


def register_once() -> None:
    """create_app may run more than once in a process (tests); the registry takes one collector."""
    global _registered
    if not _registered:
        metrics.register_collector(StorageCollector())
        _registered = True
