"""The gateway's own metrics (uploads, the outbox, what users do to their jobs).

Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter, Gauge, Histogram

from services.common import presets

UPLOADS = Counter("gateway_uploads", "Uploads by outcome", ["result"])
UPLOAD_BYTES = Counter("gateway_upload_bytes", "Bytes of accepted uploads")
UPLOAD_PRESETS = Counter("gateway_upload_presets", "Accepted uploads by the preset they named: a built-in's name, "
                         "custom (any user preset) or none", ["preset"])
for _preset in ("none", "custom", *presets.BUILTIN):
    UPLOAD_PRESETS.labels(_preset)  # a bounded set of series, each there from the start
OUTBOX_BACKLOG = Gauge("gateway_outbox_backlog", "Jobs stored whose message is not confirmed by the broker yet",
                       multiprocess_mode="max")
JOB_CANCELS = Counter("gateway_job_cancels", "Jobs cancelled by their owner")
JOB_DELETES = Counter("gateway_job_deletes", "Jobs deleted with their files by their owner")
EVENT_STREAMS = Gauge("gateway_event_streams", "Live job event streams open", multiprocess_mode="livesum")
EVENT_STREAM_ENDS = Counter("gateway_event_stream_ends", "Live job event streams ended, by why: final (the job "
                            "ended), deleted, client_gone, error, closed (by the server: HEAD, a failed write), "
                            "abandoned (never sent), revoked (its credential no longer holds)", ["reason"])
for _reason in ("final", "deleted", "client_gone", "error", "closed", "abandoned", "revoked"):
    EVENT_STREAM_ENDS.labels(_reason)
EVENT_STREAMS_USER_LIMITED = Counter("gateway_event_streams_user_limited", "Live job event streams refused with 429 "
                                     "too_many_streams: the user held EVENT_STREAMS_PER_USER on this process")
JOB_OUTPUTS = Histogram("gateway_job_outputs", "Outputs asked for per accepted upload (1 without `outputs`)",
                        buckets=(1, 2, 3, 4, 5, 8, 16))
UPLOADS_REUSED = Counter("gateway_uploads_reused",
                         "Uploads done at once with the result of an identical earlier upload")
IDEMPOTENT_REPLAYS = Counter("gateway_idempotent_replays",
                             "Uploads repeating an Idempotency-Key: answered with the first job, "
                             "or 409 while it uploads",
                             ["result"])
for _result in ("replayed", "conflict"):
    IDEMPOTENT_REPLAYS.labels(_result)
JOB_VIEWS = Counter("gateway_job_views", "Job views answered by GET /jobs/<id> (200), by how: cached (its body at "
                    "that revision kept from an earlier answer of this process) or built", ["how"])
for _how in ("cached", "built"):
    JOB_VIEWS.labels(_how)
REVISION_READS = Histogram("gateway_revision_reads", "Reads of job revisions sent to the database for polls "
                           "(GET /jobs/<id> conditional or of a job that stood still), by how many polls each "
                           "one answered: polls waiting at the same moment share one read",
                           buckets=(1, 2, 4, 8, 16, 32, 64))
OUTBOX_PUBLISHED = Counter("gateway_outbox_published", "Jobs published late by the outbox relay")
TOKEN_VERIFICATIONS = Counter("gateway_token_verifications", "Bearer tokens verified by the gateway, by outcome",
                              ["result"])
API_KEY_AUTHENTICATIONS = Counter("gateway_api_key_authentications", "Requests made with an API key, by outcome: "
                                  "valid, invalid (401), read_only (a read key on a change: 403), "
                                  "auth_unavailable (503)", ["result"])
for _result in ("valid", "invalid", "read_only", "auth_unavailable"):
    API_KEY_AUTHENTICATIONS.labels(_result)
JWKS_FETCHES = Counter("gateway_jwks_fetches", "Fetches of auth's public keys (JWKS) by outcome", ["result"])
JWKS_KEYS = Gauge("gateway_jwks_keys", "Public keys the gateway holds to verify tokens", multiprocess_mode="max")
TUS_UPLOADS = Counter("gateway_tus_uploads", "Resumable (tus) uploads by event: created, resumed (a PATCH past 0 "
                      "after a HEAD), completed, terminated", ["event"])
for _event in ("created", "resumed", "completed", "terminated"):
    TUS_UPLOADS.labels(_event)  # every series exists from the start, for dashboards and rate()
UPLOADS_IN_PROGRESS = Gauge("gateway_uploads_in_progress", "Upload bodies this gateway is receiving now",
                            multiprocess_mode="livesum")
QUOTA_REJECTIONS = Counter("gateway_quota_rejections", "Uploads refused with 429 quota_exceeded, by the limit reached",
                           ["limit"])
DOWNLOADS_IN_PROGRESS = Gauge("gateway_downloads_in_progress",
                              "Downloads (token or signed link) this gateway is sending now",
                              multiprocess_mode="livesum")
TOO_BUSY = Counter("gateway_too_busy",
                   "Requests refused with 503 too_busy, by what was full (uploads, event_streams, downloads)",
                   ["what"])
for _limit in ("active_jobs", "stored_bytes", "uploads_per_day"):
    QUOTA_REJECTIONS.labels(_limit)
for _what in ("uploads", "event_streams", "downloads"):
    TOO_BUSY.labels(_what)
LINK_DOWNLOADS = Counter("gateway_link_downloads", "Signed-link downloads by outcome (ok, forged, expired, revoked)",
                         ["result"])
for _result in ("ok", "forged", "expired", "revoked"):  # exported from the start: panels see zeros, not gaps
    LINK_DOWNLOADS.labels(_result)
WEB_PAGE_LOADS = Counter("gateway_web_page_loads", "Web app page loads (GET /, a 304 revalidation included)")
