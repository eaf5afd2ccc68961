"""Polls traced at OTEL_POLL_SAMPLE_RATIO, every change of a job and its pipeline at 100 %: a gateway of
our own on the test stack, with the poll ratio at 0 and its spans exported to an OTLP receiver of its own
(devkit/otlp.py); the rest of the stack exports to the session's. What the sampler sees
is what the Flask instrumentation gives it when the server span starts, so this runs the real thing."""
from __future__ import annotations

import os
import time
import uuid

import pytest
import requests

from devkit.client import Client
from devkit.media import make_media
from devkit.otlp import Receiver
from devkit.stack import private_gateways


@pytest.fixture(scope="module")
def traced(stack, tmp_path_factory):
    env = dict(os.environ, AUTH_URL=stack["auth"])
    otlp = Receiver()
    settings = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_POLL_SAMPLE_RATIO": "0",
                "OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.port}"}
    with private_gateways(env, settings, tmp_path_factory.mktemp("polls"), 1) as [(base, _)]:
        user = Client(base).signed_up()
        response = user.upload(make_media(tmp_path_factory.mktemp("polls-media") / "clip.mp4", seconds=1))
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        done = user.wait_job(job_id)
        assert done["status"] == "done", done
        yield {"user": user, "job_id": job_id, "otlp": otlp, "pipeline": stack["otlp"],
               "etag": user.job(job_id).headers["ETag"]}


def server_spans(otlp, method: str, route: str, settle: float = 1.5) -> list[dict]:
    """Our gateway's server spans of `method` `route`, once its batch processor has had time to export."""
    time.sleep(settle)
    with otlp.lock:
        return [s for s in otlp.spans if s["kind"] == "server"
                and s["attributes"].get("http.route") == route
                and (s["attributes"].get("http.request.method") or s["attributes"].get("http.method")) == method]


def test_polls_are_not_traced_at_ratio_zero(traced):
    user, job_id = traced["user"], traced["job_id"]
    for path in (f"/jobs/{job_id}", "/jobs", "/me"):
        for _ in range(5):
            assert requests.get(f"{user.base}{path}", headers=user.auth, timeout=10).status_code == 200
    unchanged = requests.get(f"{user.base}/jobs/{job_id}", timeout=10,
                             headers={**user.auth, "If-None-Match": traced["etag"]})
    assert unchanged.status_code == 304
    for route in ("/jobs/<job_id>", "/jobs", "/me"):
        assert server_spans(traced["otlp"], "GET", route) == [], route


def test_a_conditional_get_of_any_route_is_a_poll(traced):
    user = traced["user"]
    page = requests.get(f"{user.base}/", timeout=10)
    assert requests.get(f"{user.base}/", headers={"If-None-Match": page.headers["ETag"]}, timeout=10).status_code == 304
    spans = server_spans(traced["otlp"], "GET", "/")
    assert len(spans) == 1  # the unconditional page load only


def test_the_upload_and_the_jobs_pipeline_stay_traced(traced):
    otlp = traced["otlp"]
    [upload] = [s for s in server_spans(otlp, "POST", "/upload", settle=0)
                if s["attributes"].get("vid2mp3.job_id") == traced["job_id"]]
    services = {s["service"] for s in traced["pipeline"].trace(upload["trace_id"])}
    assert {"converter", "notification"} <= services, services  # children follow their sampled parent


def test_a_poll_under_a_sampled_parent_is_traced(traced):
    user, job_id = traced["user"], traced["job_id"]
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    requests.get(f"{user.base}/jobs/{job_id}", headers={**user.auth, "traceparent": parent}, timeout=10)
    assert [s["trace_id"] for s in server_spans(traced["otlp"], "GET", "/jobs/<job_id>")] == [trace_id]


def test_changes_of_a_job_are_traced(traced, tmp_path):
    user = traced["user"]
    job_id = user.upload(make_media(tmp_path / "second.mp4", seconds=1)).json()["job_id"]
    requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10)
    assert requests.delete(f"{user.base}/jobs/{job_id}", headers=user.auth, timeout=10).status_code == 204
    otlp = traced["otlp"]
    assert [path(s) for s in server_spans(otlp, "POST", "/jobs/<job_id>/cancel")] == [f"/jobs/{job_id}/cancel"]
    assert [path(s) for s in server_spans(otlp, "DELETE", "/jobs/<job_id>", settle=0)] == [f"/jobs/{job_id}"]


def path(span: dict) -> str:
    attributes = span["attributes"]
    return attributes.get("url.path") or attributes.get("http.target", "").split("?")[0]
