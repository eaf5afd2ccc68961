"""A user of the public API, as the tests and load runs drive it."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import requests


class Client:
    """A user of the public API."""

    def __init__(self, base: str, email_addr: str | None = None, password: str = "a-good-password-42"):
        self.base = base
        self.email = email_addr or f"user-{uuid.uuid4().hex[:10]}@example.com"
        self.password = password
        self.token: str | None = None

    def register(self) -> requests.Response:
        return requests.post(f"{self.base}/register", json={"email": self.email, "password": self.password}, timeout=10)

    def login(self) -> str:
        response = requests.post(f"{self.base}/login", auth=(self.email, self.password), timeout=10)
        assert response.status_code == 200, response.text
        self.token = response.text
        return self.token

    def signed_up(self) -> "Client":
        assert self.register().status_code == 201
        self.login()
        return self

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def upload(self, path: Path, name: str | None = None, options: dict | None = None) -> requests.Response:
        """POST /upload; `options` go as form fields before the file."""
        with open(path, "rb") as f:
            return requests.post(f"{self.base}/upload", headers=self.auth, files={"file": (name or path.name, f)},
                                 data=options or {}, timeout=60)

    def job(self, job_id: str) -> requests.Response:
        return requests.get(f"{self.base}/jobs/{job_id}", headers=self.auth, timeout=10)

    def download(self, fid: str, **headers) -> requests.Response:
        return requests.get(f"{self.base}/download", params={"fid": fid}, headers={**self.auth, **headers}, timeout=30)

    def wait_job(self, job_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.job(job_id).json()
            if body["status"] in ("done", "failed"):
                return body
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} not finished after {timeout} s: {body}")
