"""Locust scenario of the bench's API figure (loadtest/bench_api.py): one GET path as fast as possible.

API_PATH names the path (/healthz or /jobs/<id>); API_TOKEN, when set, is sent as a Bearer token.
Closed model without think time: the requests/s measure how many the one gateway process serves.
"""
from __future__ import annotations

import os

from locust import FastHttpUser, constant, task


class RateUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        token = os.environ.get("API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client.get(os.environ["API_PATH"], name=os.environ.get("API_NAME", "GET"), headers=headers)
