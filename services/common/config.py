"""Every setting of every service, read from the environment.

SETTINGS is the single table of names, defaults and meanings: the README table and
`.env.example` are checked against it by tests/unit/test_config.py. It is grouped by the process that
reads each setting (all that one service reads: the README.md in its folder). Ports are named
`<SERVICE>_PORT` (a service's HTTP API) and `<SERVICE>_METRICS_PORT` (its /metrics, and a worker's
health checks), each set here once.
"""
from __future__ import annotations

import os

# name, default, meaning
SETTINGS: list[tuple[str, str, str]] = [
    # --- every process: logs, telemetry, the broker and its queues, MongoDB
    ("LOG_LEVEL", "INFO", "log level of every process (DEBUG, INFO, WARNING, ERROR)"),
    ("SERVICE_VERSION", "", "version reported in build info, logs and Sentry releases (empty: the release's, "
     "pyproject.toml's version, as /healthz shows it)"),
    ("GIT_SHA", "unknown", "commit the process was built from (build info metric)"),
    ("DEPLOY_ENV", "local", "environment name reported to Sentry and in logs"),
    ("SENTRY_DSN", "", "enables Sentry error reporting when set"),
    ("OTEL_POLL_SAMPLE_RATIO", "0.01",
     "share (0-1) of the polling requests (GET /jobs/<id>, GET /jobs, GET /me, and any conditional GET: "
     "If-None-Match / If-Modified-Since) whose traces are kept; every other request, and every job's pipeline, "
     "is sampled as OTEL_TRACES_SAMPLER says (a child follows its parent's decision)"),
    ("BIND_HOST", "127.0.0.1", "address the HTTP services and metrics endpoints listen on (0.0.0.0 in containers)"),
    ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F", "AMQP URL of the broker"),
    ("AMQP_QUEUE_TYPE", "quorum", "type of the work and dead-letter queues: quorum or classic"),
    ("AMQP_HEARTBEAT_SECONDS", "30", "AMQP heartbeat interval"),
    ("VIDEO_QUEUE", "video", "queue of uploaded videos waiting for conversion"),
    ("MP3_QUEUE", "mp3", "queue of finished (done or failed) jobs waiting for an email"),
    ("WEBHOOK_QUEUE", "webhook",
     "queue of webhook deliveries of ended jobs (notification publishes it for jobs with a callback_url and "
     "consumes it, apart from the emails)"),
    ("RETRY_DELAYS", "5,30,120",
     "seconds to wait before each retry of a transient failure; after the last one the message is "
     "dead-lettered"),
    ("MONGO_URI", "mongodb://127.0.0.1:27017", "MongoDB connection string"),
    ("MONGO_VIDEOS_DB", "videos", "GridFS database of uploaded videos"),
    ("MONGO_MP3S_DB", "mp3s",
     "GridFS database of produced results (audio in any format; the name is kept from when only MP3 existed)"),
    ("MONGO_JOBS_DB", "vid2mp3", "database of the jobs and notifications collections"),
    ("MONGO_TIMEOUT_MS", "5000", "MongoDB server selection and socket timeout"),
    # --- auth and gateway: gunicorn and the HTTP guard in front of the app
    ("PROMETHEUS_MULTIPROC_DIR", "",
     "folder for gunicorn multi-worker metrics (set by the gunicorn config when empty)"),
    ("GUNICORN_WORKERS", "1",
     "gunicorn worker processes of auth and gateway: keep 1 and scale pods with the HPA (above 1, metrics "
     "switch to multiprocess mode, which drops exemplars and the process_* CPU and memory series)"),
    ("GUNICORN_THREADS", "8",
     "threads per gunicorn worker for short requests (the gateway adds one for each of its UPLOADS_MAX, "
     "EVENT_STREAMS_MAX and DOWNLOADS_MAX places)"),
    ("GUNICORN_TIMEOUT", "120", "gunicorn worker timeout in seconds"),
    ("HTTP_HEADER_TIMEOUT_SECONDS", "15",
     "time a client has to send its request line and headers (from its connection, or from its first byte on a"
     " kept-alive one); then 408 and close. No thread waits for it"),
    ("HTTP_BODY_TIMEOUT_SECONDS", "15",
     "time a client has to send a small body (up to HTTP_BODY_BUFFER_BYTES) once its headers are in; then 408 "
     "and close. No thread waits for it"),
    ("HTTP_BODY_BUFFER_BYTES", "65536",
     "largest request body read by the event loop before a thread takes the request; a larger one is refused "
     "with 413 except on routes that stream bodies (uploads, tus PATCH)"),
    ("HTTP_IDLE_TIMEOUT_SECONDS", "30",
     "longest wait for one read or write of a client in a thread (streamed bodies, downloads, event streams) "
     "before its connection is closed"),
    ("HTTP_MIN_TRANSFER_RATE_BYTES", "1024",
     "bytes per second of waiting a client must move in a streamed body, download or event stream once it has "
     "made a thread wait HTTP_TRANSFER_GRACE_SECONDS in all; a slower one is closed"),
    ("HTTP_TRANSFER_GRACE_SECONDS", "20",
     "waiting on a client a thread accepts before HTTP_MIN_TRANSFER_RATE_BYTES applies"),
    ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "64",
     "open connections one client address may hold on one process (429 beyond); not applied behind "
     "TRUSTED_PROXY_HOPS proxies, whose peers are the proxies (the edge caps clients there); 0: no cap"),
    # --- auth
    ("AUTH_PORT", "5000", "port of the auth service"),
    ("AUTH_METRICS_PORT", "9103",
     "port of auth's /metrics endpoint (never the service port: /metrics on AUTH_PORT answers 404)"),
    ("MYSQL_HOST", "127.0.0.1", "MySQL/MariaDB host of the users database"),
    ("MYSQL_PORT", "3306", "MySQL/MariaDB port"),
    ("MYSQL_USER", "root", "MySQL user"),
    ("MYSQL_PASSWORD", "", "MySQL password"),
    ("MYSQL_DATABASE", "vid2mp3_auth", "database of the users table (created if missing)"),
    ("MYSQL_POOL_SIZE", "8",
     "idle MySQL connections each auth process keeps for reuse (at least 1); a request that finds none opens "
     "one, so at most one per request thread is open"),
    ("ARGON2_TIME_COST", "3", "argon2id passes over memory (RFC 9106 second choice: 3)"),
    ("ARGON2_MEMORY_KIB", "65536",
     "argon2id memory per hash in KiB (RFC 9106 second choice: 64 MiB; OWASP's floor is 19 MiB with 2 passes)"),
    ("ARGON2_PARALLELISM", "4",
     "argon2id lanes (RFC 9106: 4); part of the hash, so a change rehashes each password at its next login"),
    ("ARGON2_MAX_CONCURRENT", "2",
     "argon2id hashes (logins, registrations) one auth process computes at once, each holding "
     "ARGON2_MEMORY_KIB: the pod's memory limit follows from it (README \"Password hashing\"); more wait "
     "ARGON2_WAIT_SECONDS for a place, then answer 503 too_busy"),
    ("ARGON2_WAIT_SECONDS", "1",
     "longest a login or registration waits for a hashing place before it answers 503 too_busy with "
     "Retry-After (keep the wait plus LOGIN_SLOWDOWN_MAX_SECONDS and a hash below the gateway's "
     "UPSTREAM_TIMEOUT_SECONDS)"),
    ("JWT_PRIVATE_KEY", "",
     "Ed25519 private key (PEM; literal \\n accepted) that signs tokens (EdDSA, kid = its RFC 7638 thumbprint);"
     " required unless AUTH_DEV_MODE=1"),
    ("JWT_PUBLIC_KEYS", "",
     "further Ed25519 public keys (PEM, one after another) that verify tokens and are published in the JWKS: "
     "the next key before it signs, retired keys until their tokens expire"),
    ("JWT_TTL_SECONDS", "86400", "lifetime of an issued token"),
    ("AUTH_DEV_MODE", "0",
     "1 allows a missing JWT_PRIVATE_KEY (auth makes a key at start; make up keeps one in VID2MP3_HOME) and a "
     "missing or short LINK_SECRET (never in production)"),
    ("LOGIN_MAX_FAILURES", "10",
     "failed logins of one account from one client address before that pair is refused for a while (429); "
     "beyond it from any address the account's logins are slowed down, never refused"),
    ("LOGIN_MAX_FAILURES_PER_ADDRESS", "100",
     "failed logins from one client address (any accounts) before its logins are refused for a while"),
    ("LOGIN_LOCKOUT_SECONDS", "300", "window of the failed-login limit"),
    ("LOGIN_SLOWDOWN_STEP_SECONDS", "0.25",
     "delay added to every login of an account per attempt beyond LOGIN_MAX_FAILURES in the window, from any "
     "address (slowed, never refused: its owner still logs in)"),
    ("LOGIN_SLOWDOWN_MAX_SECONDS", "2", "longest delay of a login of an account under attack from many addresses"),
    ("REGISTER_MAX_PER_ADDRESS", "10",
     "registration attempts from one client address per window; more answer 429 too_many_registrations (make "
     "up sets 1000: locally every client is 127.0.0.1)"),
    ("REGISTER_WINDOW_SECONDS", "3600", "window of the registration limit"),
    ("API_KEYS_MAX_PER_USER", "20",
     "API keys one user may hold (expired ones count until revoked); more answer 409 too_many_api_keys"),
    # --- gateway (PUBLIC_URL and LINK_SECRET: notification too; USER_MAX_STORED_BYTES: the converter too)
    ("GATEWAY_PORT", "8080", "port of the public gateway"),
    ("GATEWAY_METRICS_PORT", "9102",
     "port of the gateway's /metrics endpoint (never public: /metrics on GATEWAY_PORT answers 404)"),
    ("TRUSTED_PROXY_HOPS", "0",
     "reverse proxies in front of the gateway whose X-Forwarded-For names the client address (1 behind the "
     "Kubernetes edge proxy: a Gateway's or an ingress controller; 0 ignores the header)"),
    ("AUTH_URL", "http://127.0.0.1:5000", "base URL of the auth service, as the gateway sees it"),
    ("PUBLIC_URL", "http://127.0.0.1:8080", "base URL users reach the gateway at (download links in emails)"),
    ("LINK_SECRET", "",
     "key signing the token-free download links of done jobs (`link`, emails), at least 32 characters; "
     "required unless AUTH_DEV_MODE=1; changing it voids every link given out"),
    ("MAX_UPLOAD_BYTES", "2147483648", "largest accepted upload body; larger answers 413"),
    ("MAX_OUTPUTS_PER_JOB", "5",
     "most entries of an upload's `outputs` (several results from one video); more answers 400 invalid_option"),
    ("TUS_UPLOAD_EXPIRY_SECONDS", "86400",
     "how long an unfinished resumable (tus) upload waits for its next PATCH; then it answers 410 and the "
     "janitor removes its bytes"),
    ("OUTBOX_INTERVAL_SECONDS", "5",
     "how often the gateway re-publishes stored jobs whose message is not confirmed yet"),
    ("EVENT_STREAMS_MAX", "4",
     "live job event streams (GET /jobs/<id>/events) one gateway process serves at once, each holding a "
     "thread; more answer 503 too_busy"),
    ("EVENT_STREAMS_PER_USER", "2",
     "live job event streams one user may hold on one gateway process (at most EVENT_STREAMS_MAX); more answer"
     " 429 too_many_streams with Retry-After, so one user cannot take every place"),
    ("DOWNLOADS_MAX", "64",
     "downloads (GET /download, signed links) one gateway process sends at once, each holding a thread for as "
     "long as its client reads; more answer 503 too_busy"),
    ("UPLOADS_MAX", "256",
     "uploads (POST /upload and tus PATCH bodies) one gateway process receives at once, each holding a thread "
     "and up to ~4 MiB of not yet stored chunks (size the memory limit for it); more answer 503 too_busy"),
    ("USER_MAX_ACTIVE_JOBS", "5",
     "unfinished jobs (queued, converting, or still uploading) one user may have; more answer 429 "
     "quota_exceeded (admins are exempt)"),
    ("USER_MAX_STORED_BYTES", "10737418240",
     "bytes one user may keep stored: videos, results, uploads in progress (counted at their declared length) and"
     " results being converted (at their predicted upper bound); more answer 429 quota_exceeded, and a result "
     "that would pass it fails its job (read by the gateway and the converter: give both the same value)"),
    ("USER_MAX_UPLOADS_PER_DAY", "200",
     "uploads one user may start in any 24 hours; more answer 429 quota_exceeded with Retry-After"),
    ("IDEMPOTENCY_KEY_SECONDS", "86400",
     "how long an upload's Idempotency-Key answers with its first job (then the janitor forgets it)"),
    ("DEDUP_ACROSS_USERS", "0",
     "1 lets an upload reuse the result of another user's identical upload (tells a user what others uploaded; "
     "see README)"),
    ("PRESETS_MAX_PER_USER", "50",
     "output presets one user may keep (GET/PUT /me/presets; the built-in ones do not count); more answer 409 "
     "too_many_presets"),
    ("UPSTREAM_TIMEOUT_SECONDS", "5", "timeout of calls from the gateway to auth"),
    ("JWKS_CACHE_SECONDS", "300",
     "how long the gateway uses auth's public keys before fetching them again (a removed key stops verifying "
     "within this time)"),
    ("JWKS_REFRESH_MIN_SECONDS", "10",
     "least time between two fetches of auth's public keys prompted by tokens naming an unknown kid"),
    ("STORAGE_CAPACITY_BYTES", "107374182400",
     "storage the deployment has for videos and results (the storage alert predicts against it)"),
    ("CORS_ALLOWED_ORIGINS", "",
     "comma-separated origins (scheme://host[:port], no path, no wildcard) whose pages may call the API from "
     "a browser (CORS); empty: no CORS headers at all, only the gateway's own web app calls it"),
    # --- converter (WORK_DIR: the janitor too)
    ("CONVERTER_METRICS_PORT", "9100",
     "port of the converter's /metrics, /healthz and /readyz (Prometheus and probes only)"),
    ("FFMPEG_BINARY", "",
     "ffmpeg executable; empty: the static build of imageio-ffmpeg (the converter's lock: it starts in ~10 ms "
     "where a distribution's shared-library build takes ~80 ms, most of a short job's overhead), else ffmpeg on "
     "PATH"),
    ("MP3_BITRATE", "192k",
     "bitrate of produced MP3s when the upload gives no `bitrate` or `quality` (ignored when the source audio "
     "is already MP3 and is copied)"),
    ("FFMPEG_TIMEOUT_SECONDS", "1800", "longest one conversion may run before the job fails"),
    ("MAX_MEDIA_SECONDS", "21600", "longest media duration accepted; longer sources fail with a reason"),
    ("MAX_OUTPUT_BYTES", "2147483648",
     "largest result one job may produce (it is written to the converter's work folder first, then stored): a "
     "job whose predicted upper bound (probed duration × the output's rate, plus container) is larger fails "
     "before ffmpeg starts, and ffmpeg is stopped when the output grows past it. What the owner's "
     "USER_MAX_STORED_BYTES has left caps a result the same way"),
    ("JOB_LEASE_SECONDS", "30",
     "how long a converter's claim on a job lasts without renewal (a crashed worker's job is taken over after "
     "this)"),
    ("WORK_DIR", "", "folder for temporary media files (default: the system temp folder)"),
    ("IMPORT_ALLOWED_NETWORKS", "",
     "comma-separated CIDR networks a URL import (source_url) may fetch from although not public; empty: public "
     "addresses only. Apart from WEBHOOK_ALLOWED_NETWORKS: an import reads what it fetches back to the user"),
    ("IMPORT_TIMEOUT_SECONDS", "600",
     "deadline of one whole URL import: every redirect hop, name resolution, connect, TLS and the body; a "
     "source still sending is cut there and the job fails"),
    ("IMPORT_STALL_SECONDS", "30",
     "longest a URL import waits for the next bytes of its source; past it the attempt is retried with "
     "back-off (RETRY_DELAYS), then the job fails"),
    ("IMPORT_MAX_REDIRECTS", "5",
     "redirects a URL import follows (each hop checked like the first URL); one more fails the job"),
    # --- notification
    ("NOTIFICATION_METRICS_PORT", "9101",
     "port of the notification worker's /metrics, /healthz and /readyz (Prometheus and probes only)"),
    ("SMTP_HOST", "127.0.0.1", "SMTP server"),
    ("SMTP_PORT", "1025", "SMTP port"),
    ("SMTP_USER", "", "SMTP user (no login when empty)"),
    ("SMTP_PASSWORD", "", "SMTP password"),
    ("SMTP_STARTTLS", "0", "1 upgrades the SMTP connection with STARTTLS"),
    ("SMTP_SSL", "0", "1 connects with implicit TLS (port 465 style)"),
    ("SMTP_TIMEOUT_SECONDS", "10", "SMTP connect and command timeout"),
    ("MAIL_FROM", "vid2mp3 <noreply@vid2mp3.local>", "sender of notification emails"),
    ("WEBHOOK_ALLOWED_NETWORKS", "",
     "comma-separated CIDR networks webhooks may reach although not public (make up sets 127.0.0.0/8); empty: "
     "public addresses only"),
    ("WEBHOOK_TIMEOUT_SECONDS", "10",
     "deadline of one whole webhook delivery: name resolution, connect, TLS, request, status line, headers and"
     " body (a receiver still answering is cut there; retried like a 5xx)"),
    ("WEBHOOK_CONCURRENCY", "8",
     "webhook deliveries one notification process makes at once, each on a thread of its own and at most "
     "WEBHOOK_TIMEOUT_SECONDS long"),
    ("WEBHOOK_MAX_PER_TENANT", "2",
     "webhook deliveries of one user a notification process makes at once; more wait in the first retry delay "
     "queue (not counted as a retry), so one user's slow receivers cannot take every place"),
    ("NOTIFICATION_HANDLER_DEADLINE_SECONDS", "300",
     "longest one email or one webhook may be in hand; past it the notification worker's /healthz answers 503 "
     "and Kubernetes restarts it (above the longest legitimate email: a lease wait, an SMTP conversation and "
     "60 s of record retries)"),
    # --- janitor: retention and leftovers (the retention settings also date the jobs the gateway shows)
    ("VIDEO_RETENTION_SECONDS", "3600", "how long an uploaded video is kept after its job ends"),
    ("RESULT_RETENTION_SECONDS", "604800", "how long a result is kept after its job is done; then the job is expired"),
    ("JANITOR_INTERVAL_SECONDS", "300",
     "how often the janitor removes expired files and leftovers (local loop; a CronJob in Kubernetes)"),
    ("JANITOR_GRACE_SECONDS", "3600",
     "age below which a stored file no job references is left alone (it may be an upload in progress)"),
    # --- the local stack (make up, services/devstack)
    ("VID2MP3_HOME", ".local",
     "folder of the local stack's data, logs, pid files and mail (relative to the repository)"),
    ("MONGO_LOCAL_PORT", "27017", "port of the local MongoDB stand-in that make up starts when MONGO_URI is not set"),
]

_DEFAULTS = {name: default for name, default, _ in SETTINGS}

# Settings that are not free text, and what their value must be; checked once at start-up, so a
# bad value stops the process at boot instead of failing a request later.
_COUNTS = """
    AUTH_PORT AUTH_METRICS_PORT GATEWAY_PORT GATEWAY_METRICS_PORT CONVERTER_METRICS_PORT NOTIFICATION_METRICS_PORT
    MONGO_LOCAL_PORT SMTP_PORT MYSQL_PORT AMQP_HEARTBEAT_SECONDS MONGO_TIMEOUT_MS MYSQL_POOL_SIZE JWT_TTL_SECONDS
    ARGON2_TIME_COST ARGON2_MEMORY_KIB ARGON2_PARALLELISM ARGON2_MAX_CONCURRENT
    LOGIN_MAX_FAILURES LOGIN_MAX_FAILURES_PER_ADDRESS LOGIN_LOCKOUT_SECONDS REGISTER_MAX_PER_ADDRESS
    REGISTER_WINDOW_SECONDS API_KEYS_MAX_PER_USER TRUSTED_PROXY_HOPS MAX_UPLOAD_BYTES EVENT_STREAMS_MAX
    EVENT_STREAMS_PER_USER UPLOADS_MAX MAX_OUTPUTS_PER_JOB PRESETS_MAX_PER_USER
    DOWNLOADS_MAX USER_MAX_ACTIVE_JOBS USER_MAX_STORED_BYTES USER_MAX_UPLOADS_PER_DAY STORAGE_CAPACITY_BYTES
    MAX_OUTPUT_BYTES WEBHOOK_CONCURRENCY WEBHOOK_MAX_PER_TENANT HTTP_BODY_BUFFER_BYTES HTTP_MIN_TRANSFER_RATE_BYTES
    HTTP_MAX_CONNECTIONS_PER_ADDRESS GUNICORN_WORKERS GUNICORN_THREADS GUNICORN_TIMEOUT IMPORT_MAX_REDIRECTS
"""
_SECONDS = """
    OUTBOX_INTERVAL_SECONDS UPSTREAM_TIMEOUT_SECONDS JWKS_CACHE_SECONDS JWKS_REFRESH_MIN_SECONDS
    FFMPEG_TIMEOUT_SECONDS MAX_MEDIA_SECONDS JOB_LEASE_SECONDS SMTP_TIMEOUT_SECONDS WEBHOOK_TIMEOUT_SECONDS
    NOTIFICATION_HANDLER_DEADLINE_SECONDS VIDEO_RETENTION_SECONDS RESULT_RETENTION_SECONDS JANITOR_INTERVAL_SECONDS
    JANITOR_GRACE_SECONDS TUS_UPLOAD_EXPIRY_SECONDS HTTP_HEADER_TIMEOUT_SECONDS HTTP_BODY_TIMEOUT_SECONDS
    HTTP_IDLE_TIMEOUT_SECONDS HTTP_TRANSFER_GRACE_SECONDS IDEMPOTENCY_KEY_SECONDS ARGON2_WAIT_SECONDS
    LOGIN_SLOWDOWN_STEP_SECONDS LOGIN_SLOWDOWN_MAX_SECONDS IMPORT_TIMEOUT_SECONDS IMPORT_STALL_SECONDS
"""
TYPES: dict[str, str] = {
    **dict.fromkeys(_COUNTS.split(), "count"),
    **dict.fromkeys(_SECONDS.split(), "seconds"),
    **dict.fromkeys(("AUTH_DEV_MODE", "SMTP_STARTTLS", "SMTP_SSL", "DEDUP_ACROSS_USERS"), "flag"),
    "RETRY_DELAYS": "delays",
    "WEBHOOK_ALLOWED_NETWORKS": "networks",
    "IMPORT_ALLOWED_NETWORKS": "networks",
    "CORS_ALLOWED_ORIGINS": "origins",
    "AMQP_QUEUE_TYPE": "queue_type",
    "OTEL_POLL_SAMPLE_RATIO": "ratio",
}
_FLAGS = ("1", "0", "true", "false", "yes", "no", "on", "off")


def _valid(kind: str, value: str) -> bool:
    try:
        if kind == "count":
            return int(value) >= 0
        if kind == "seconds":
            return float(value) >= 0
        if kind == "ratio":
            return 0 <= float(value) <= 1
        if kind == "delays":
            return all(float(x) >= 0 for x in value.split(",") if x.strip())
    except ValueError:
        return False
    if kind == "networks":
        return all(_network(x) for x in value.split(",") if x.strip())
    if kind == "flag":
        return value.strip().lower() in _FLAGS
    if kind == "origins":
        return all(origin(x) for x in value.split(",") if x.strip())
    return value in ("quorum", "classic")


def _network(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(text.strip(), strict=False)
        return True
    except ValueError:
        return False


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(text: str) -> str | None:
    """`text` as browsers write it in an Origin header (scheme and host in lower case, no default port),
    or None when it is not one exact web origin: a path, a query, user info, a wildcard or `null` are
    refused, so a setting cannot open the API wider than the sites it names."""
    from urllib.parse import urlsplit

    text = text.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if (parts.scheme.lower() not in _DEFAULT_PORTS or not host or "*" in host or "@" in parts.netloc
            or parts.path or parts.query or parts.fragment or text.endswith(("?", "#"))):
        return None
    scheme = parts.scheme.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def allowed_origins() -> frozenset[str]:
    """CORS_ALLOWED_ORIGINS, each as browsers send it (see origin())."""
    return frozenset(filter(None, (origin(x) for x in env("CORS_ALLOWED_ORIGINS").split(",") if x.strip())))


# Settings of older versions: set, they would be ignored without a word, so a process refuses to start.
RENAMED = {"METRICS_PORT": "CONVERTER_METRICS_PORT or NOTIFICATION_METRICS_PORT"}


def validate() -> None:
    """Raise SystemExit naming every setting whose value cannot be used."""
    bad = [f"{name}={env(name)!r} (expected {kind})" for name, kind in TYPES.items() if not _valid(kind, env(name))]
    bad += [f"{old} is now {new}" for old, new in RENAMED.items() if old in os.environ]
    if bad:
        raise SystemExit("invalid settings: " + "; ".join(bad))


def default(name: str) -> str:
    """The setting's default from SETTINGS."""
    return _DEFAULTS[name]


def env(name: str) -> str:
    """The setting's value from the environment, or its default from SETTINGS."""
    return os.environ.get(name, _DEFAULTS[name])


def env_int(name: str) -> int:
    return int(env(name))


def env_float(name: str) -> float:
    return float(env(name))


def env_bool(name: str) -> bool:
    return env(name).strip().lower() in ("1", "true", "yes", "on")


def retry_delays() -> list[float]:
    return [float(x) for x in env("RETRY_DELAYS").split(",") if x.strip()]
