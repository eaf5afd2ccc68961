"""The poll sampler's decisions (services/common/sampling.py), on the attributes the Flask instrumentation
gives a server span at its start (old and new HTTP semantic conventions)."""
from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import sampling as sdk
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from services.common import sampling

TRACE_ID = 0x1234567890ABCDEF1234567890ABCDEF


@pytest.mark.parametrize("attributes,poll", [
    ({"http.method": "GET", "http.route": "/jobs/<job_id>"}, True),
    ({"http.request.method": "GET", "http.route": "/jobs"}, True),
    ({"http.method": "HEAD", "http.route": "/me"}, True),
    ({"http.method": "GET", "http.target": "/jobs/abc?x=1"}, True),  # no route: the path decides
    ({"http.request.method": "GET", "url.path": "/me"}, True),
    ({"http.method": "POST", "http.route": "/upload"}, False),
    ({"http.method": "POST", "http.route": "/jobs/<job_id>/cancel"}, False),
    ({"http.method": "DELETE", "http.route": "/jobs/<job_id>"}, False),
    ({"http.method": "PATCH", "http.target": "/files/abc"}, False),
    ({"http.method": "GET", "http.route": "/jobs/<job_id>/events"}, False),
    ({"http.method": "GET", "http.target": "/jobs/abc/events"}, False),
    ({"http.method": "GET", "http.route": "/download"}, False),
    ({}, False),
])
def test_which_requests_are_polls(attributes, poll):
    sampling.note_request({})
    assert sampling.is_poll(attributes) is poll


def test_any_conditional_read_is_a_poll():
    sampling.note_request({"HTTP_IF_NONE_MATCH": '"abc"'})
    try:
        assert sampling.is_poll({"http.method": "GET", "http.route": "/download"})
        assert not sampling.is_poll({"http.method": "POST", "http.route": "/upload"})
    finally:
        sampling.note_request({})


def decide(sampler, attributes, parent=None, kind=SpanKind.SERVER) -> bool:
    return sampler.should_sample(parent, TRACE_ID, "GET", kind, attributes).decision.is_sampled()


POLL = {"http.method": "GET", "http.route": "/jobs/<job_id>"}
UPLOAD = {"http.method": "POST", "http.route": "/upload"}


def test_polls_take_the_ratio_the_rest_the_configured_sampler():
    sampling.note_request({})
    none, every = (sampling.PollSampler(sdk.ParentBased(sdk.ALWAYS_ON), ratio) for ratio in (0.0, 1.0))
    assert not decide(none, POLL) and decide(every, POLL)
    assert decide(none, UPLOAD)
    assert decide(none, POLL, kind=SpanKind.CLIENT)  # only a request's own server span is a poll
    assert not decide(sampling.PollSampler(sdk.ALWAYS_OFF, 1.0), POLL)  # off stays off


def test_a_poll_follows_its_parent():
    sampling.note_request({})
    sampler = sampling.PollSampler(sdk.ParentBased(sdk.ALWAYS_ON), 0.0)
    for flags, kept in ((TraceFlags.SAMPLED, True), (TraceFlags.DEFAULT, False)):
        parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(TRACE_ID, 0xABC, True, TraceFlags(flags))))
        assert decide(sampler, POLL, parent) is kept


def test_an_unsampled_trace_gives_no_exemplar():
    from services.common import metrics

    for flags, expected in ((TraceFlags.SAMPLED, {"trace_id": format(TRACE_ID, "032x")}), (TraceFlags.DEFAULT, None)):
        span = NonRecordingSpan(SpanContext(TRACE_ID, 0xABC, False, TraceFlags(flags)))
        with trace.use_span(span):
            assert metrics.exemplar() == expected
