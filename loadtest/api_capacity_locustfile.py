"""Locust scenario of the API capacity benchmark (loadtest/bench.py, figure d): no waiting on conversions.

Each user signs up, converts one small clip at start (so it has a job to look at and an MP3 to
download), then mixes: job status 8, download 6, upload (small clip, not waited for) 3, list 2,
login 1. Closed model with short think times, so RPS grows with users until something saturates.
"""
from __future__ import annotations

import random

from locust import between, task

import locustfile  # the module, not its classes: only CapacityUser runs from this file
from locustfile import ApiUser, JobFailed, root_span


class CapacityUser(ApiUser):
    wait_time = between(0.2, 0.8)

    def on_start(self) -> None:
        super().on_start()
        self.job_ids: list[str] = []
        with root_span("upload→mp3"):
            self.convert_one()
        self.job_ids += [job_id for job_id in self._job_ids()]

    def _job_ids(self) -> list[str]:
        response = self.client.get("/jobs", params={"limit": 5}, name="/jobs", headers=self.headers())
        return [job["job_id"] for job in response.json().get("jobs", [])] if response.status_code == 200 else []

    def _small_clip(self) -> tuple[str, bytes]:
        return "clip-2s.mp4", locustfile.clips()["clip-2s.mp4"]

    @task(8)
    def job_status(self) -> None:
        if self.job_ids:
            with root_span("job status"):
                self.client.get(f"/jobs/{random.choice(self.job_ids)}", name="/jobs/[id]", headers=self.headers())

    @task(6)
    def download_mp3(self) -> None:
        if self.done_mp3s:
            with root_span("download"):
                try:
                    self.download(random.choice(self.done_mp3s))
                except JobFailed:
                    pass

    @task(3)
    def upload_small(self) -> None:
        with root_span("upload"):
            job_id = self.upload(*self._small_clip())
        if job_id:
            self.job_ids = (self.job_ids + [job_id])[-20:]

    @task(2)
    def list_jobs(self) -> None:
        with root_span("list jobs"):
            self.client.get("/jobs", params={"limit": 20}, name="/jobs", headers=self.headers())

    @task(1)
    def relogin(self) -> None:
        with root_span("login"):
            self.login()
