"""The gateway's own metrics (uploads, the outbox, what users do to their jobs). Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter, Gauge

UPLOADS = Counter("gateway_uploads", "Uploads by outcome", ["result"])
UPLOAD_BYTES = Counter("gateway_upload_bytes", "Bytes of accepted uploads")
OUTBOX_BACKLOG = Gauge("gateway_outbox_backlog", "Jobs stored whose message is not confirmed by the broker yet",
                       multiprocess_mode="max")
JOB_CANCELS = Counter("gateway_job_cancels", "Jobs cancelled by their owner")
JOB_DELETES = Counter("gateway_job_deletes", "Jobs deleted with their files by their owner")
EVENT_STREAMS = Gauge("gateway_event_streams", "Live job event streams open", multiprocess_mode="livesum")
OUTBOX_PUBLISHED = Counter("gateway_outbox_published", "Jobs published late by the outbox relay")
WEB_PAGE_LOADS = Counter("gateway_web_page_loads", "Web app page loads (GET /, a 304 revalidation included)")
