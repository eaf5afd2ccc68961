"""The gateway's own metrics (uploads, the outbox, what users do to their jobs). Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter, Gauge

UPLOADS = Counter("gateway_uploads", "Uploads by outcome", ["result"])
UPLOAD_BYTES = Counter("gateway_upload_bytes", "Bytes of accepted uploads")
OUTBOX_BACKLOG = Gauge("gateway_outbox_backlog", "Jobs stored whose message is not confirmed by the broker yet",
                       multiprocess_mode="max")
JOB_CANCELS = Counter("gateway_job_cancels", "Jobs cancelled by their owner")
JOB_DELETES = Counter("gateway_job_deletes", "Jobs deleted with their files by their owner")
EVENT_STREAMS = Gauge("gateway_event_streams", "Live job event streams open", multiprocess_mode="livesum")
UPLOADS_REUSED = Counter("gateway_uploads_reused", "Uploads done at once with the MP3 of an identical earlier upload")
IDEMPOTENT_REPLAYS = Counter("gateway_idempotent_replays",
                             "Uploads repeating an Idempotency-Key: answered with the first job, or 409 while it uploads",
                             ["result"])
for _result in ("replayed", "conflict"):
    IDEMPOTENT_REPLAYS.labels(_result)
OUTBOX_PUBLISHED = Counter("gateway_outbox_published", "Jobs published late by the outbox relay")
