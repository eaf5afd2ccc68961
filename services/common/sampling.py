"""Which traces are kept: a polling request's at OTEL_POLL_SAMPLE_RATIO, every other one as
OTEL_TRACES_SAMPLER says.

A client polls its job every second or two while it converts, and a page re-reads the listing: traced
like an upload, the polls would be most of the spans and, at ~0.75 ms of gateway CPU each, a third of
a status request's cost (loadtest/PROFILING.md, issue 24). A poll changes nothing, so a sample of
them tells as much. Requests that change a job (upload, tus, cancel, delete) and every job's own
pipeline keep the configured sampler, and a span with a parent follows it (parent-based): a sampled
upload's converter, notification and webhook spans are all kept.

The decision is taken when the server span starts. The Flask instrumentation hands the sampler the
method and the path (`http.method`/`http.request.method`, `http.target`/`url.path`) and, once the URL
matched a rule, `http.route`; not the request's headers, so whether a GET is conditional (it may be
answered 304) is noted by `note_request`, a before_request hook that runs ahead of the instrumentation's.
"""
from __future__ import annotations

import contextvars
import re
from typing import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

POLL_ROUTES = frozenset({"/jobs/<job_id>", "/jobs", "/me"})
POLL_PATH = re.compile(r"/jobs(/[^/]+)?/?|/me/?")  # the same, for a span that carries no http.route
READ_METHODS = frozenset({"GET", "HEAD"})
CONDITIONAL_HEADERS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE")

_conditional = contextvars.ContextVar("vid2mp3_conditional_request", default=False)


def note_request(environ: Mapping) -> None:
    """Remember whether the request being served is conditional (set for every request: a gthread worker's
    thread serves one request after another)."""
    _conditional.set(any(environ.get(name) for name in CONDITIONAL_HEADERS))


def is_poll(attributes: Attributes) -> bool:
    """A GET/HEAD of a job, the listing or the account, or any conditional GET/HEAD."""
    attributes = attributes or {}
    method = attributes.get("http.request.method") or attributes.get("http.method")
    if method not in READ_METHODS:
        return False
    if _conditional.get():
        return True
    route = attributes.get("http.route")
    if route:
        return route in POLL_ROUTES
    path = attributes.get("url.path") or str(attributes.get("http.target") or "").split("?", 1)[0]
    return bool(POLL_PATH.fullmatch(str(path)))


class PollSampler(sampling.Sampler):
    """`configured` (the SDK's reading of OTEL_TRACES_SAMPLER), and for the root span of a poll also a
    trace-id ratio: a poll is kept when both keep it, so always_off still means off."""

    def __init__(self, configured: sampling.Sampler, poll_ratio: float):
        self.configured = configured
        self.polls = sampling.TraceIdRatioBased(poll_ratio)

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None
                      ) -> sampling.SamplingResult:
        decided = self.configured.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if (decided.decision.is_sampled() and kind == SpanKind.SERVER and not _has_parent(parent_context)
                and is_poll(attributes)):
            return self.polls.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return decided

    def get_description(self) -> str:
        return f"PollSampler{{{self.configured.get_description()},polls:{self.polls.get_description()}}}"


def _has_parent(parent_context: Context | None) -> bool:
    return trace.get_current_span(parent_context).get_span_context().is_valid


def configured_sampler(poll_ratio: float) -> sampling.Sampler:
    """The sampler OTEL_TRACES_SAMPLER(_ARG) names (read by the SDK's own function: the same names and
    defaults as without us), with polls thinned to `poll_ratio`."""
    return PollSampler(sampling._get_from_env_or_default(), poll_ratio)
