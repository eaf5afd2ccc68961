"""What every process's metrics share: build info, AMQP reconnects, exemplars and exposition.

Each service defines its own metrics next to its code (services/<service>/metrics.py; the HTTP
RED metrics of both Flask services in web.py), so a process exposes only what it imports.
"""
from __future__ import annotations

import os

from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, multiprocess
from prometheus_client.exposition import choose_encoder

BUILD_INFO = Gauge("vid2mp3_build_info", "Build of the running process", ["service", "version", "git_sha"],
                   multiprocess_mode="max")

# --- every process that talks to RabbitMQ (gateway, converter, notification)
AMQP_RECONNECTS = Counter("vid2mp3_amqp_reconnects",
                          "AMQP connections found dead and reopened, by where it was noticed "
                          "(lost_while_idle, lost_on_publish, lost_on_check, consumer_lost)", ["reason"])

# --- the HTTP services' gunicorn (services/common/gunicorn_worker.py)
CLIENT_TIMEOUTS = Counter("vid2mp3_http_client_timeouts", "Client connections closed for being too slow: silent "
                          "from the start (idle), request head or small body not complete in time (headers, body), "
                          "or a streamed body, download or event stream below the minimum rate (slow)", ["reason"])
for _reason in ("idle", "headers", "body", "slow"):
    CLIENT_TIMEOUTS.labels(_reason)
HTTP_REFUSED = Counter("vid2mp3_http_refused", "Connections or requests the server answered itself before any thread: "
                       "over the connections per client address (per_address), a body too large to buffer on a "
                       "route that does not stream bodies (body_too_large)", ["reason"])
for _reason in ("per_address", "body_too_large"):
    HTTP_REFUSED.labels(_reason)
HTTP_READING = Gauge("vid2mp3_http_connections_reading", "Connections whose request the event loop is still reading "
                     "(no thread is spent on them)", multiprocess_mode="livesum")


def exemplar() -> dict[str, str] | None:
    """The current trace id as an exemplar, when there is a trace that is kept (ignored by text-format
    scrapes): an unsampled one (a poll, services/common/sampling.py) would link to a trace nobody stored."""
    context = trace.get_current_span().get_span_context()
    return {"trace_id": format(context.trace_id, "032x")} if context.is_valid and context.trace_flags.sampled else None


def observe(histogram, value: float) -> None:
    histogram.observe(value, exemplar=exemplar())


_collectors: list = []  # collected at scrape time (not per-process values): exposed in both modes


def register_collector(collector) -> None:
    REGISTRY.register(collector)
    _collectors.append(collector)


def registry():
    """The registry to expose: all gunicorn workers' values in multiprocess mode, else this process'."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        for collector in _collectors:
            reg.register(collector)
        return reg
    return REGISTRY


def render(accept_header: str | None) -> tuple[bytes, str]:
    """Exposition body and content type; OpenMetrics (with exemplars) when the scraper asks for it."""
    encoder, content_type = choose_encoder(accept_header or "")
    return encoder(registry()), content_type
