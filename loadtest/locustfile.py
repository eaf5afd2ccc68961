"""Locust scenarios of vid2mp3: realistic users of the public API.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080          # web UI
    python loadtest/run.py --users 10 --spawn-rate 2 --duration 2m         # headless, CSV + HTML

Users (the weights set the mix when locust spawns users; 3:1 = 75 % converters, 25 % browsers):

* ConvertingUser (weight 3): registers and logs in once, then repeatedly uploads a short
  generated clip (2 s / 5 s MP4, MKV, WebM), polls its job until done or failed, downloads
  the MP3 and checks it is real MP3 audio (an ID3 tag or an MPEG frame sync).
* BrowsingUser (weight 1): registers, logs in and converts one clip at start (so it has
  something to download), then only lists its jobs and downloads finished MP3s.

Besides the HTTP requests, every finished job is reported to Locust as its own request type
JOB / "upload→mp3": the end-to-end latency from the upload being accepted (202) to the MP3
being downloadable, so it shows in the statistics, CSV and HTML reports like a request.
A failed job, a timed-out job or a download that is not MP3 is a JOB failure.

Tracing: when OTEL_EXPORTER_OTLP_ENDPOINT is set, every task is one root span (service
"loadgen", or OTEL_SERVICE_NAME) and each request carries its W3C `traceparent`, so one
task's requests and the job they start are one trace. Without the variable nothing is set
up and no header is sent.

Settings (environment): LOADTEST_MEDIA_DIR (clip folder, generated on first use),
LOADTEST_JOB_TIMEOUT (seconds a job may take before it counts as failed, default 300),
LOADTEST_POLL_SECONDS (status poll interval, default 0.5).
"""
from __future__ import annotations

import os
import random
import time
import uuid
from contextlib import contextmanager

from locust import HttpUser, between, events, task

import media

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # a plain locust image without OpenTelemetry: no spans, no traceparent
    otel_context = propagate = trace = None

JOB_TIMEOUT = float(os.environ.get("LOADTEST_JOB_TIMEOUT", "300"))
POLL_SECONDS = float(os.environ.get("LOADTEST_POLL_SECONDS", "0.5"))
JOB_TYPE, JOB_NAME = "JOB", "upload→mp3"
PASSWORD = "load-test-password-42"


# ----------------------------------------------------------------------------- tracing


def _setup_tracing() -> None:
    """Configure the OTel SDK only when an OTLP endpoint is given; otherwise the API stays a no-op."""
    if trace is None or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    os.environ.setdefault("OTEL_SERVICE_NAME", "loadgen")
    provider = TracerProvider(resource=Resource.create({}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


_setup_tracing()
tracer = trace.get_tracer("vid2mp3.loadtest") if trace else None


@events.quitting.add_listener
def _flush_spans(environment, **kwargs):
    provider = trace.get_tracer_provider() if trace else None
    if hasattr(provider, "shutdown"):
        provider.shutdown()


@contextmanager
def root_span(name: str):
    """A new trace per task (never a child of whatever ran before in this greenlet)."""
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, context=otel_context.Context(), kind=trace.SpanKind.CLIENT) as span:
        yield span


# ----------------------------------------------------------------------------- media


_POOL: dict[str, bytes] | None = None


def clips() -> dict[str, bytes]:
    global _POOL
    if _POOL is None:
        _POOL = media.pool()
    return _POOL


@events.init.add_listener
def _make_media(environment, **kwargs):
    clips()  # once per process, before any user starts


CONTENT_TYPES = {".mp4": "video/mp4", ".mkv": "video/x-matroska", ".webm": "video/webm"}


class JobFailed(Exception):
    pass


# ----------------------------------------------------------------------------- users


class ApiUser(HttpUser):
    """Common behaviour: an account of its own, traced requests, and one whole job as a unit."""

    abstract = True
    host = "http://127.0.0.1:8080"

    def on_start(self) -> None:
        self.email = f"load-{uuid.uuid4().hex[:12]}@example.com"
        self.token = ""
        self.done_mp3s: list[str] = []
        with root_span("sign up"):
            with self.client.post("/register", json={"email": self.email, "password": PASSWORD},
                                  headers=self.headers(auth=False), catch_response=True) as response:
                if response.status_code != 201:
                    response.failure(f"register answered {response.status_code}: {response.text[:200]}")
            self.login()

    def login(self) -> None:
        with self.client.post("/login", auth=(self.email, PASSWORD), headers=self.headers(auth=False),
                              catch_response=True) as response:
            if response.status_code == 200 and response.text.count(".") == 2:
                self.token = response.text.strip()
            else:
                response.failure(f"login answered {response.status_code}: {response.text[:200]}")

    def ensure_token(self) -> None:
        """A user refused at login (503 too_busy while auth hashes at capacity, 429) tries again at its
        next task, as a client honouring Retry-After does, instead of going on without a token."""
        if not self.token:
            self.login()

    def headers(self, auth: bool = True) -> dict[str, str]:
        headers: dict[str, str] = {}
        if propagate is not None:
            propagate.inject(headers)  # traceparent (+ baggage) of the current span; nothing when not tracing
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    # -- one job: upload, wait, download; reported as a JOB "request"
    def upload_fields(self) -> dict[str, str]:
        """Form fields sent beside the file (output options, callback_url); none here."""
        return {}

    def upload(self, name: str, data: bytes) -> str | None:
        content_type = CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
        with self.client.post("/upload", files={"file": (name, data, content_type)}, data=self.upload_fields(),
                              headers=self.headers(), catch_response=True) as response:
            if response.status_code == 202 and "job_id" in (response.json() or {}):
                return response.json()["job_id"]
            response.failure(f"upload answered {response.status_code}: {response.text[:200]}")
            return None

    def wait_job(self, job_id: str) -> dict:
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            with self.client.get(f"/jobs/{job_id}", name="/jobs/[id]", headers=self.headers(),
                                 catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"job status answered {response.status_code}: {response.text[:200]}")
                    raise JobFailed(f"job status answered {response.status_code}")
                job = response.json()
            if job["status"] in ("done", "failed"):
                return job
            if time.monotonic() > deadline:
                raise JobFailed(f"job not finished after {JOB_TIMEOUT:.0f} s (status {job['status']})")
            time.sleep(POLL_SECONDS)

    def download(self, mp3_id: str) -> int:
        """Download one MP3 and check it is audio; its size in bytes, or raise JobFailed."""
        with self.client.get("/download", params={"fid": mp3_id}, name="/download", headers=self.headers(),
                             catch_response=True) as response:
            body = response.content
            if response.status_code != 200:
                response.failure(f"download answered {response.status_code}: {response.text[:200]}")
                raise JobFailed(f"download answered {response.status_code}")
            if not body or not media.looks_like_mp3(body[:4]):
                response.failure(f"download is not MP3 audio ({len(body)} bytes, starts {body[:4]!r})")
                raise JobFailed("download is not MP3 audio")
            return len(body)

    def convert_one(self) -> None:
        self.ensure_token()
        name, data = random.choice(list(clips().items()))
        job_id = self.upload(name, media.distinct(name, data))
        if job_id is None:
            return  # the upload itself is already a counted failure
        accepted = time.perf_counter()
        exception: Exception | None = None
        size = 0
        try:
            job = self.wait_job(job_id)
            if job["status"] != "done":
                raise JobFailed(f"job failed: {job.get('reason')}")
            size = self.download(job["mp3_id"])
            self.done_mp3s.append(job["mp3_id"])
        except JobFailed as exc:
            exception = exc
        # upload accepted -> MP3 downloaded and checked
        self.environment.events.request.fire(
            request_type=JOB_TYPE, name=JOB_NAME, response_time=(time.perf_counter() - accepted) * 1000,
            response_length=size, exception=exception, context={"job_id": job_id, "clip": name}, response=None)


class ConvertingUser(ApiUser):
    """Uploads clips one after the other and fetches every MP3."""

    weight = 3
    wait_time = between(1, 3)

    @task(10)
    def convert(self) -> None:
        with root_span("upload→mp3"):
            self.convert_one()

    @task(1)
    def list_jobs(self) -> None:
        self.ensure_token()
        with root_span("list jobs"):
            self.client.get("/jobs", params={"limit": 10}, name="/jobs", headers=self.headers())


class BrowsingUser(ApiUser):
    """Only looks: lists its jobs and downloads the finished MP3s (after one conversion at start)."""

    weight = 1
    wait_time = between(2, 5)

    def on_start(self) -> None:
        super().on_start()
        with root_span("upload→mp3"):
            self.convert_one()

    @task(3)
    def list_jobs(self) -> None:
        self.ensure_token()
        with root_span("list jobs"):
            with self.client.get("/jobs", params={"limit": 20, "status": "done"}, name="/jobs",
                                 headers=self.headers(), catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"list answered {response.status_code}")
                    return
                self.done_mp3s = [job["mp3_id"] for job in response.json()["jobs"] if job.get("mp3_id")]

    @task(2)
    def download_one(self) -> None:
        if not self.done_mp3s:
            return
        with root_span("download"):
            try:
                self.download(random.choice(self.done_mp3s))
            except JobFailed:
                pass  # already counted as a failed /download
