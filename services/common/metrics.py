"""Every Prometheus metric of the project, defined once (names are the contract of the dashboards and alerts)."""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

from . import telemetry

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CONVERSION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)
E2E_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)

BUILD_INFO = Gauge("vid2mp3_build_info", "Build of the running process", ["service", "version", "git_sha"],
                   multiprocess_mode="max")

# --- every process that talks to RabbitMQ (gateway, converter, notification)
AMQP_RECONNECTS = Counter("vid2mp3_amqp_reconnects", "AMQP connections found dead and reopened, by where it was noticed "
                          "(lost_while_idle, lost_on_publish, lost_on_check, consumer_lost)", ["reason"])

# --- HTTP services (auth, gateway)
HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"])
HTTP_DURATION = Histogram("http_request_duration_seconds", "Time to answer an HTTP request",
                          ["service", "method", "route"], buckets=HTTP_BUCKETS)

# --- gateway
UPLOADS = Counter("gateway_uploads", "Uploads by outcome", ["result"])
UPLOAD_BYTES = Counter("gateway_upload_bytes", "Bytes of accepted uploads")
OUTBOX_BACKLOG = Gauge("gateway_outbox_backlog", "Jobs stored whose message is not confirmed by the broker yet",
                       multiprocess_mode="max")
JOB_CANCELS = Counter("gateway_job_cancels", "Jobs cancelled by their owner")
JOB_DELETES = Counter("gateway_job_deletes", "Jobs deleted with their files by their owner")
EVENT_STREAMS = Gauge("gateway_event_streams", "Live job event streams open", multiprocess_mode="livesum")
OUTBOX_PUBLISHED = Counter("gateway_outbox_published", "Jobs published late by the outbox relay")

# --- auth
LOGINS = Counter("auth_logins", "Login attempts by outcome", ["result"])
REGISTRATIONS = Counter("auth_registrations", "Registration attempts by outcome", ["result"])
TOKEN_VALIDATIONS = Counter("auth_token_validations", "Token validations by outcome", ["result"])

# --- converter
JOBS = Counter("converter_jobs", "Conversion attempts by outcome", ["result"])
CONVERSION_DURATION = Histogram("converter_conversion_duration_seconds", "Time ffmpeg spent on one job",
                                buckets=CONVERSION_BUCKETS)
QUEUE_WAIT = Histogram("converter_queue_wait_seconds", "Time from publish to pick-up by a converter",
                       buckets=QUEUE_WAIT_BUCKETS)
JOB_E2E_LATENCY = Histogram("converter_job_e2e_latency_seconds", "Time from upload accepted to MP3 ready",
                            buckets=E2E_BUCKETS)
AUDIO_SECONDS = Counter("converter_audio_seconds", "Seconds of audio produced")
BYTES_IN = Counter("converter_bytes_in", "Bytes of video read by the converter")
BYTES_OUT = Counter("converter_bytes_out", "Bytes of MP3 written by the converter")
CHILD_FAILURES = Counter("converter_child_failures", "ffprobe/ffmpeg runs ended by a system fault and retried",
                         ["tool", "cause"])
JOBS_IN_PROGRESS = Gauge("converter_jobs_in_progress", "Jobs being converted right now")

# --- notification
EMAILS = Counter("notification_emails", "Notification emails by outcome", ["result"])


def exemplar() -> dict[str, str] | None:
    """The current trace id as an exemplar, when there is a trace (ignored by text-format scrapes)."""
    trace_id = telemetry.current_trace_id()
    return {"trace_id": trace_id} if trace_id else None


def observe(histogram, value: float) -> None:
    histogram.observe(value, exemplar=exemplar())


def registry():
    """The registry to expose: all gunicorn workers' values in multiprocess mode, else this process'."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return reg
    from prometheus_client import REGISTRY

    return REGISTRY


# Every process defines every metric above; each exposes only its own families (and the process ones),
# so a converter's page carries no idle http_* series and an auth page no converter_* ones.
OWN_PREFIXES = {"auth": ("auth_", "http_"), "gateway": ("gateway_", "http_"),
                "converter": ("converter_",), "notification": ("notification_",)}
SHARED_PREFIXES = ("vid2mp3_", "process_", "python_")
_exposed: tuple[str, ...] | None = None  # None: everything (a process that never called expose_only)


def expose_only(service: str) -> None:
    global _exposed
    _exposed = OWN_PREFIXES.get(service, ()) + SHARED_PREFIXES


class _Filtered:
    """A registry view with only the exposed metric families."""

    def __init__(self, source, prefixes: tuple[str, ...]):
        self.source, self.prefixes = source, prefixes

    def collect(self):
        return (family for family in self.source.collect() if family.name.startswith(self.prefixes))


def render(accept_header: str | None) -> tuple[bytes, str]:
    """Exposition body and content type; OpenMetrics (with exemplars) when the scraper asks for it."""
    encoder, content_type = choose_encoder(accept_header or "")
    source = registry()
    return encoder(source if _exposed is None else _Filtered(source, _exposed)), content_type
