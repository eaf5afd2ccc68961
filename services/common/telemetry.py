"""Logging, tracing and error reporting, set up once per process by `init_telemetry`.

Traces are configured only through the standard OTEL_* variables (OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER,
OTEL_PYTHON_FLASK_EXCLUDED_URLS, ...), plus the project's OTEL_POLL_SAMPLE_RATIO for polling requests
(services/common/sampling.py). With neither OTEL_TRACES_EXPORTER nor an OTLP endpoint
set, spans are still created (so trace ids reach logs and exemplars) but nothing is exported
and nothing is printed.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from . import config, redact, release, sampling

if TYPE_CHECKING:  # sentry_sdk is imported only when a DSN is set
    from sentry_sdk.types import Event as SentryEvent, Hint

_initialised: str | None = None

JOB_ID_KEY = "vid2mp3.job_id"

# Keys of LogRecord that are not "extra" fields given by the caller.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current trace and span ids.

    Hand-made rather than a JSON-logging library: a few lines, no dependency, and the ids come
    straight from the OpenTelemetry context, which such libraries would need a filter for anyway."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": redact.text(record.getMessage()),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        job_id = baggage.get_baggage(JOB_ID_KEY)
        if job_id:
            entry["job_id"] = str(job_id)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = redact.value(value)
        if record.exc_info:
            entry["exception"] = redact.text(self.formatException(record.exc_info))
        return json.dumps(entry, default=lambda other: redact.text(str(other)))


def _setup_logging(service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.env("LOG_LEVEL").upper())
    # pika logs every connection step at INFO; its warnings are what matter.
    logging.getLogger("pika").setLevel(logging.WARNING)
    for noisy in ("gunicorn.access", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# Health checks and scrapes would be most of the traces; OTEL_PYTHON_FLASK_EXCLUDED_URLS (or the
# generic OTEL_PYTHON_EXCLUDED_URLS) replaces this list when set.
DEFAULT_FLASK_EXCLUDED_URLS = "healthz,readyz"


def flask_excluded_urls() -> str | None:
    """The project's excluded URLs, or None when the standard variables are set (the instrumentor reads them)."""
    if any(name in os.environ for name in ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")):
        return None
    return DEFAULT_FLASK_EXCLUDED_URLS


def span_exporters() -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (comma-separated: otlp, console, none or any installed
    `opentelemetry_traces_exporter` entry point). Unset, OTLP only when an OTLP endpoint is configured."""
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                      or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = ["otlp"]
    if "none" in names:
        return []
    exporters = []
    for name in names:
        # "otlp" is OTLP over the protocol installed here (the SDK's default protocol is http/protobuf).
        found = entry_points(group="opentelemetry_traces_exporter", name="otlp_proto_http" if name == "otlp" else name)
        if not found:
            known = sorted(e.name for e in entry_points(group="opentelemetry_traces_exporter"))
            raise ValueError(f"OTEL_TRACES_EXPORTER names {name!r}; installed: none, otlp, {', '.join(known)}")
        exporters.append(next(iter(found)).load()())
    return exporters


def reported_version() -> str:
    """SERVICE_VERSION when set, else the release's version (services/common/release.py)."""
    return config.env("SERVICE_VERSION") or release.version()


def resource(service: str) -> Resource:
    """service.name (OTEL_SERVICE_NAME, else `service`), version and deployment environment;
    OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override the defaults."""
    return Resource.create({
        "service.name": service,
        "service.version": reported_version(),
        "deployment.environment.name": config.env("DEPLOY_ENV"),
    }).merge(OTELResourceDetector().detect())


class RedactingExporter(SpanExporter):
    """Hands spans to `exporter` with credentials scrubbed from their name, attributes, events and status
    (services/common/redact.py): the one place every span passes, whatever instrumentation made it."""

    def __init__(self, exporter: SpanExporter):
        self.exporter = exporter

    def export(self, spans) -> SpanExportResult:
        return self.exporter.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of an ended span with every credential it may carry replaced by [redacted]."""
    events = [Event(e.name, redact.attributes(e.attributes), e.timestamp) for e in span.events]
    status = Status(span.status.status_code, redact.text(span.status.description or "") or None)
    return ReadableSpan(name=redact.text(span.name), context=span.context, parent=span.parent,
                        resource=span.resource, attributes=redact.attributes(span.attributes), events=events,
                        links=span.links, kind=span.kind, status=status, start_time=span.start_time,
                        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)


class JobIdSpanProcessor(SpanProcessor):
    """Copies the job id from baggage onto every span started under it (pymongo, SMTP, ...)."""

    def on_start(self, span, parent_context=None) -> None:
        job_id = baggage.get_baggage(JOB_ID_KEY, parent_context)
        if job_id:
            span.set_attribute(JOB_ID_KEY, str(job_id))


def job_context(job_id: str):
    """Put the job id in baggage (it then travels in message headers too); returns the token to detach."""
    trace.get_current_span().set_attribute(JOB_ID_KEY, job_id)
    return context.attach(baggage.set_baggage(JOB_ID_KEY, job_id))


def detach(token) -> None:
    context.detach(token)


def _setup_tracing(service: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The SDK reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG and OTEL_BSP_* itself; polls are thinned
    # to OTEL_POLL_SAMPLE_RATIO on top (services/common/sampling.py).
    provider = TracerProvider(resource=resource(service),
                              sampler=sampling.configured_sampler(config.env_float("OTEL_POLL_SAMPLE_RATIO")))
    provider.add_span_processor(JobIdSpanProcessor())
    for exporter in span_exporters():
        provider.add_span_processor(BatchSpanProcessor(RedactingExporter(exporter)))
    trace.set_tracer_provider(provider)

    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.pymysql import PyMySQLInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    PymongoInstrumentor().instrument()
    PyMySQLInstrumentor().instrument()
    RequestsInstrumentor().instrument()


def _setup_sentry(service: str) -> None:
    dsn = config.env("SENTRY_DSN")
    if not dsn:
        return
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        release=f"vid2mp3@{reported_version()}",
        environment=config.env("DEPLOY_ENV"),
        server_name=service,
        # OpenTelemetry owns tracing and the W3C propagator; Sentry only reports errors.
        traces_sample_rate=None,
        send_default_pii=False,
        before_send=_redacted_event,
    )


def _redacted_event(event: SentryEvent, hint: Hint) -> SentryEvent:
    """A Sentry event without credentials (the request URL of a signed link, tokens in messages)."""
    request = event.get("request") or {}
    query = request.get("query_string")
    if isinstance(query, str):  # "a=b&c=d", without the "?" the scrubber keys on
        request["query_string"] = redact.text("?" + query)[1:]
    return redact.value(event)


def init_telemetry(service: str) -> None:
    """Set up logs, traces, Sentry and the build-info metric for this process (idempotent)."""
    global _initialised
    if _initialised == service:
        return
    _initialised = service
    _setup_logging(service)
    _setup_tracing(service)
    _setup_sentry(service)
    from . import metrics  # here, not at the top: metrics must not need telemetry at import

    metrics.BUILD_INFO.labels(service, reported_version(), config.env("GIT_SHA")).set(1)


def service_name() -> str | None:
    """The service this process was initialised as by `init_telemetry` (None before)."""
    return _initialised


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def flush() -> None:
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(5000)


def record_error(span: trace.Span, exc: BaseException, description: str | None = None) -> None:
    """Mark a span failed, keep the exception on it, and report it to Sentry when enabled."""
    span.record_exception(exc)
    span.set_status(trace.Status(trace.StatusCode.ERROR, description or str(exc)[:200]))
    if config.env("SENTRY_DSN"):
        import sentry_sdk

        sentry_sdk.capture_exception(exc)
