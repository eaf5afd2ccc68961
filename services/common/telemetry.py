"""Logging, tracing and error reporting, set up once per process by `init_telemetry`.

Traces are configured only through the standard OTEL_* variables: with no exporter
endpoint configured, spans are still created (so trace ids reach logs and exemplars)
but nothing is exported and nothing is printed.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import SpanProcessor

from . import config

_initialised: str | None = None

JOB_ID_KEY = "vid2mp3.job_id"

# Keys of LogRecord that are not "extra" fields given by the caller.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current trace and span ids."""

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
            "message": record.getMessage(),
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
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


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


def _exporter_configured() -> bool:
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


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
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    os.environ.setdefault("OTEL_SERVICE_NAME", service)
    resource = Resource.create(
        {"service.version": config.env("SERVICE_VERSION"), "deployment.environment": config.env("DEPLOY_ENV")}
    ).merge(OTELResourceDetector().detect())
    # The SDK reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG itself.
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(JobIdSpanProcessor())
    if _exporter_configured():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
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
        release=f"vid2mp3@{config.env('SERVICE_VERSION')}",
        environment=config.env("DEPLOY_ENV"),
        server_name=service,
        # OpenTelemetry owns tracing and the W3C propagator; Sentry only reports errors.
        traces_sample_rate=None,
        send_default_pii=False,
    )


def init_telemetry(service: str) -> None:
    """Set up logs, traces, Sentry and the build-info metric for this process (idempotent)."""
    global _initialised
    if _initialised == service:
        return
    _initialised = service
    _setup_logging(service)
    _setup_tracing(service)
    _setup_sentry(service)
    from . import metrics

    metrics.BUILD_INFO.labels(service, config.env("SERVICE_VERSION"), config.env("GIT_SHA")).set(1)
    metrics.expose_only(service)


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
