"""Telemetry of a real run: one trace per job across all four services, metrics that move, JSON logs."""
from __future__ import annotations

import json
import re
import time

import pytest
import requests

from tests.conftest import STACK_ENV
from devkit.client import Client
from devkit.media import make_media
from devkit.metrics import metric_samples
from devkit.otlp import render_tree

VIDEO_Q, MP3_Q = STACK_ENV["VIDEO_QUEUE"], STACK_ENV["MP3_QUEUE"]
SERVICES = ("gateway", "auth", "converter", "notification")
JOB_SERVICES = ("gateway", "converter", "notification")  # the gateway verifies tokens itself: no auth call


def value(samples: dict, name: str, **labels) -> float:
    return sum(v for (n, labelled), v in samples.items()
               if n == name and all(dict(labelled).get(k) == w for k, w in labels.items()))


def scrape_all(stack) -> dict[str, dict]:
    return {service: metric_samples(url) for service, url in stack["metrics"].items()}


def wait_spans(otlp, check, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    return check()


@pytest.fixture(scope="module")
def run(stack, tmp_path_factory):
    """One successful and one failed job, with metrics scraped before and after."""
    before = scrape_all(stack)
    user = Client(stack["gateway"]).signed_up()
    media = tmp_path_factory.mktemp("tel")
    video = make_media(media / "traced.mp4", seconds=3)
    junk = media / "junk.mp4"
    junk.write_bytes(b"\x00\x01 definitely not media " * 100)
    ok = user.wait_job(user.upload(video).json()["job_id"])
    bad = user.wait_job(user.upload(junk).json()["job_id"])
    assert ok["status"] == "done" and bad["status"] == "failed"
    # Wait for both emails (notification is the last hop), then for its metrics.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = scrape_all(stack)
        if value(after["notification"], "notification_emails_total", result="sent") - \
                value(before["notification"], "notification_emails_total", result="sent") >= 2:
            break
        time.sleep(0.3)
    return {"user": user, "ok": ok, "bad": bad, "before": before, "after": after, "otlp": stack["otlp"]}


def job_trace(otlp, job_id: str, services=JOB_SERVICES) -> list[dict]:
    def complete():
        tagged = otlp.spans_with("vid2mp3.job_id", job_id)
        trace_ids = {s["trace_id"] for s in tagged}
        if len(trace_ids) != 1:
            return None
        spans = otlp.trace(trace_ids.pop())
        return spans if {s["service"] for s in spans} >= set(services) and \
            any(s["name"] == "smtp send" for s in spans) else None

    spans = wait_spans(otlp, complete)
    assert spans, f"no complete trace for job {job_id}: {otlp.spans_with('vid2mp3.job_id', job_id)}"
    return spans


def one(spans, **match) -> dict:
    found = [s for s in spans if all(s[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s["service"], s["name"]) for s in spans])
    return found[0]


def is_ancestor(spans, ancestor: dict, span: dict) -> bool:
    by_id = {s["span_id"]: s for s in spans}
    current = span
    while current and current["parent_id"]:
        if current["parent_id"] == ancestor["span_id"]:
            return True
        current = by_id.get(current["parent_id"])
    return False


def test_one_trace_from_upload_to_smtp_send(run):
    spans = job_trace(run["otlp"], run["ok"]["job_id"])
    print(f"\ntrace {spans[0]['trace_id']} of job {run['ok']['job_id']}:\n{render_tree(spans)}")
    assert len({s["trace_id"] for s in spans}) == 1
    upload = one(spans, service="gateway", kind="server", name="POST /upload")
    verify = one(spans, service="gateway", name="verify token")
    assert verify["attributes"]["vid2mp3.token.result"] == "valid"
    assert not [s for s in spans if s["service"] == "auth"], "a request made a call to auth"
    publish_video = one(spans, service="gateway", kind="producer", name=f"publish {VIDEO_Q}")
    process_video = one(spans, service="converter", kind="consumer", name=f"process {VIDEO_Q}")
    publish_mp3 = one(spans, service="converter", kind="producer", name=f"publish {MP3_Q}")
    process_mp3 = one(spans, service="notification", kind="consumer", name=f"process {MP3_Q}")
    smtp = one(spans, service="notification", kind="client", name="smtp send")
    assert is_ancestor(spans, upload, verify)
    assert is_ancestor(spans, upload, publish_video)
    assert process_video["parent_id"] == publish_video["span_id"]
    for child in ("gridfs read video", "ffmpeg convert", "gridfs write mp3"):
        assert is_ancestor(spans, process_video, one(spans, service="converter", name=child))
    assert is_ancestor(spans, process_video, publish_mp3)
    assert process_mp3["parent_id"] == publish_mp3["span_id"]
    assert smtp["parent_id"] == process_mp3["span_id"]
    # Messaging semantic conventions on both ends of both hops.
    for span, queue, operation in ((publish_video, VIDEO_Q, "publish"), (process_video, VIDEO_Q, "process"),
                                   (publish_mp3, MP3_Q, "publish"), (process_mp3, MP3_Q, "process")):
        attrs = span["attributes"]
        assert attrs["messaging.system"] == "rabbitmq"
        assert attrs["messaging.destination.name"] == queue
        assert attrs["messaging.operation.type"] == operation
        assert attrs["messaging.message.id"]
    # The job id is on every span of the job after the upload was accepted.
    job_id = run["ok"]["job_id"]
    for span in spans:
        if span["service"] in ("converter", "notification") or span in (upload, publish_video):
            assert span["attributes"].get("vid2mp3.job_id") == job_id, span["name"]
    # Database client spans come from the maintained instrumentation.
    assert any(s["service"] == "converter" and s["kind"] == "client"
               and s["attributes"].get("db.system") == "mongodb" for s in spans)


def test_failed_job_has_an_error_span(run):
    spans = job_trace(run["otlp"], run["bad"]["job_id"])
    errors = [s for s in spans if s["status"] == 2]
    assert any(s["service"] == "converter" for s in errors), [(s["service"], s["name"]) for s in spans]
    assert any("exception" in s["events"] for s in errors)


def test_auth_database_calls_are_traced(run):
    assert wait_spans(run["otlp"], lambda: [s for s in run["otlp"].spans if s["service"] == "auth"
                                            and s["attributes"].get("db.system") in ("mysql", "mariadb")])


def test_metrics_moved_by_the_right_amounts(run):
    before, after = run["before"], run["after"]

    def delta(service, name, **labels):
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    assert delta("converter", "converter_jobs_total", result="success") == 1
    assert delta("converter", "converter_jobs_total", result="failed") == 1
    assert delta("converter", "converter_conversion_duration_seconds_count") == 1
    assert delta("converter", "converter_job_e2e_latency_seconds_count") == 1
    assert delta("converter", "converter_queue_wait_seconds_count") >= 2
    assert delta("converter", "converter_audio_seconds_total") == pytest.approx(3, abs=0.5)
    assert delta("converter", "converter_bytes_in_total") > 0 and delta("converter", "converter_bytes_out_total") > 0
    assert value(after["converter"], "converter_jobs_in_progress") == 0
    assert delta("notification", "notification_emails_total", result="sent") == 2
    assert delta("gateway", "gateway_uploads_total", result="accepted") == 2
    assert delta("gateway", "http_requests_total", route="/upload", status="202") == 2
    assert delta("gateway", "http_request_duration_seconds_count", route="/upload") == 2
    assert delta("auth", "auth_logins_total", result="success") == 1
    assert delta("gateway", "gateway_token_verifications_total", result="valid") >= 4
    for service in SERVICES:
        assert value(after[service], "vid2mp3_build_info", service=service) == 1


def test_no_route_label_contains_an_id(run):
    for service in ("gateway", "auth"):
        routes = {dict(labels).get("route") for (name, labels) in run["after"][service] if name.startswith("http_")}
        routes.discard(None)
        assert "/jobs/<job_id>" in routes or service == "auth"
        for route in routes:
            assert not re.search(r"[0-9a-f]{12,}", route), route


def test_histograms_carry_trace_exemplars(run, stack):
    for service, metric in (("converter", "converter_job_e2e_latency_seconds_bucket"),
                            ("gateway", "http_request_duration_seconds_bucket")):
        text = requests.get(f"{stack['metrics'][service]}/metrics",
                            headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=10).text
        exemplars = re.findall(rf'^{metric}\{{.*\}} \S+ # \{{trace_id="([0-9a-f]{{32}})"\}}', text, re.M)
        assert exemplars, f"no exemplar on {metric}"


def test_logs_are_json_with_trace_ids(run, stack):
    job_id = run["ok"]["job_id"]
    trace_ids = {s["trace_id"] for s in run["otlp"].spans_with("vid2mp3.job_id", job_id)}
    seen_services = set()
    for service in SERVICES:
        for line in (stack["logs"] / f"{service}.log").read_text().splitlines():
            entry = json.loads(line)  # every line is one JSON object
            assert {"timestamp", "level", "service", "message"} <= set(entry)
            if entry.get("job_id") == job_id:
                seen_services.add(service)
                assert entry["trace_id"] in trace_ids and len(entry["span_id"]) == 16
    assert {"gateway", "converter", "notification"} <= seen_services


def test_no_secrets_in_logs_or_metrics(run, stack):
    user = run["user"]
    # the signing key, as one PEM body line (a log could hold it on one line or several)
    key_body = "".join(STACK_ENV["JWT_PRIVATE_KEY"].strip().splitlines()[1:-1])
    secrets = [user.password, user.token, key_body, STACK_ENV["LINK_SECRET"]]
    for path in stack["logs"].glob("*.log"):
        text = path.read_text()
        for secret in secrets:
            assert secret not in text, f"secret in {path.name}"
    for url in stack["metrics"].values():
        text = requests.get(f"{url}/metrics", timeout=10).text
        assert not any(secret in text for secret in secrets)


def test_sentry_is_active_and_left_propagation_alone(run):
    # SENTRY_DSN is set for the whole test stack, so the one-trace test above passing is the proof
    # that Sentry left the W3C propagator alone; here, that Sentry really was on: the failed job's
    # error reached it.
    assert wait_spans(run["otlp"], lambda: run["otlp"].sentry_posts > 0, timeout=10)


def test_each_service_exposes_only_its_own_metrics(run):
    owned = {"gateway": ("gateway_", "http_"), "auth": ("auth_", "http_"),
             "converter": ("converter_",), "notification": ("notification_",)}
    for service, samples in run["after"].items():
        names = {name for name, _ in samples}
        foreign = {n for n in names if not n.startswith(owned[service] + ("vid2mp3_", "process_", "python_"))}
        assert not foreign, f"{service} exposes metrics of other services: {sorted(foreign)[:8]}"
        assert any(n.startswith(owned[service][0]) for n in names), f"{service} lacks its own metrics"
