"""Shared test helpers: generated media, an API client, waiting for jobs and mail."""
from __future__ import annotations

import email
import email.policy
import json
import subprocess
import time
import uuid
from pathlib import Path

import requests


def make_media(path: Path, seconds: float = 3, video: str | None = "testsrc=size=320x240:rate=25",
               audio: str | None = "sine=frequency=440", extra: list[str] | None = None) -> Path:
    """Generate a real media file with ffmpeg's lavfi sources."""
    args = ["ffmpeg", "-v", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"{video}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"{audio}:duration={seconds}"]
    if video and path.suffix in (".mp4", ".mov", ".mkv"):
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio and path.suffix in (".mp4", ".mov", ".mkv"):
        args += ["-c:a", "aac"]
    args += (extra or []) + [str(path)]
    subprocess.run(args, check=True)
    return path


def unique_mp4(data: bytes) -> bytes:
    """An MP4 made unique with a `free` box its players ignore: an upload of it converts again
    instead of reusing the MP3 of an identical earlier upload (dedup)."""
    return data + (24).to_bytes(4, "big") + b"free" + uuid.uuid4().bytes


def duration_of(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
                          "-of", "json", str(path)], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)["format"]["duration"])


def codec_of(path: Path) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"][0]["codec_name"]


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


def wait_mail(maildir: Path, job_id: str, timeout: float = 30) -> list[email.message.EmailMessage]:
    """The emails in the Maildir about `job_id`, waiting for at least one."""
    deadline = time.monotonic() + timeout
    while True:
        found = mails_for(maildir, job_id)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def mails_for(maildir: Path, job_id: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(maildir.glob("*")) if maildir.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["X-Vid2mp3-Job"] == job_id:
            found.append(message)
    return found


def store_file(bucket, file_id, filename: str, source, metadata: dict) -> int:
    """Store the bytes of `source` (a binary file object) under `file_id`, first removing any partial copy."""
    from services.common.storage import files

    files.delete_file(bucket, file_id)
    with files.open_writer(bucket, file_id, filename, metadata) as writer:
        while block := source.read(1024 * 1024):
            writer.write(block)
    return writer.length


def stored_job(**fields):
    """A job stored as the gateway stores one (no video behind it), for tests of the workers."""
    from services.common.jobs import Job
    from services.common.storage import job_records
    from services.common.storage.connection import new_id

    values = dict(owner="u1", owner_email="owner@example.com", filename="clip.mp4", size=1, content_type=None,
                  video_id="v")
    values.update(fields)
    return job_records.create_job(Job(new_id(), **values))


def metric_samples(metrics_url: str) -> dict[tuple[str, tuple], float]:
    """Every series of a /metrics endpoint: (sample name, sorted label pairs) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{metrics_url}/metrics", timeout=10).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric_value(metrics_url: str, name: str, **labels) -> float | None:
    """One series' value (None when absent)."""
    return metric_samples(metrics_url).get((name, tuple(sorted(labels.items()))))


def silent_flac(path: Path, seconds: float, claimed_seconds: float | None = None, rate: int = 48000) -> Path:
    """Stereo silence as FLAC in the largest frames (an hour is ~53 KB, and ~691 MB as WAV). With
    `claimed_seconds`, its STREAMINFO header says that length instead: the probe believes the header,
    ffmpeg decodes every frame (a file whose duration lies)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=stereo",
                    "-t", str(seconds), "-c:a", "flac", "-frame_size", "65535", str(path)], check=True)
    if claimed_seconds is not None:
        data = bytearray(path.read_bytes())
        # STREAMINFO follows "fLaC" and its 4-byte block header; its bytes 10-17 end in the 36-bit sample count.
        packed = int.from_bytes(data[18:26], "big")
        packed = (packed >> 36 << 36) | round(claimed_seconds * rate)
        data[18:26] = packed.to_bytes(8, "big")
        path.write_bytes(bytes(data))
    return path
