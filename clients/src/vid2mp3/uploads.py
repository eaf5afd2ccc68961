"""Resumable uploads with tuspy (tus 1.0.0 at /uploads/).

tuspy does the protocol: the metadata, the PATCHes of `chunk_size` bytes, and the URL of each
unfinished upload kept in a storage under the file's fingerprint, so a later run resumes it. What is
this server's is added here: the creation and HEAD go through the SDK's request (Retry-After, the
quota wait, an Idempotency-Key so a creation retried after a lost answer makes one upload), a PATCH
refused as busy or cut off is resumed at the server's offset, and the job comes from `Job-Id`.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Dict, Optional
from urllib.parse import urljoin

from requests.structures import CaseInsensitiveDict
from tusclient.client import TusClient
from tusclient.exceptions import TusUploadFailed
from tusclient.fingerprint.interface import Fingerprint
from tusclient.request import TusRequest
from tusclient.uploader import Uploader

from .errors import ApiError, NetworkError, error_from, retry_after_seconds
from .models import Upload

if TYPE_CHECKING:
    from .sdk import Client

TUS = {"Tus-Resumable": "1.0.0"}
RETRIED_STATUSES = (409, 423, 429, 500, 502, 503, 504)  # offset moved, locked, busy, server trouble: HEAD, go on
MAX_ATTEMPTS = 8  # per PATCH; each waits Retry-After or a growing pause
SAMPLE = 64 * 1024


class FileFingerprint(Fingerprint):
    """A file's identity for resuming: the server, its path, size, modification time, the upload's
    metadata (other options are another upload) and its first and last 64 KiB. tuspy's own (md5 of the
    first 64 KiB and the size) takes two files that differ only near their end for one upload."""

    def __init__(self, context: Any):
        self.context = json.dumps(context, sort_keys=True)

    def get_fingerprint(self, fs: IO) -> str:
        digest = hashlib.sha256(self.context.encode())
        fs.seek(0)
        digest.update(fs.read(SAMPLE))
        size = fs.seek(0, os.SEEK_END)
        fs.seek(max(0, size - SAMPLE))
        digest.update(fs.read(SAMPLE))
        fs.seek(0)
        return f"size:{size}--sha256:{digest.hexdigest()}"


class _Uploader(Uploader):
    """tuspy's uploader with this server's creation, HEAD and PATCH retries."""

    def __init__(self, sdk: "Client", key: str, *args: Any, **kwargs: Any):
        self.sdk, self.key, self.job_id, self.idempotency_key = sdk, key, None, str(uuid.uuid4())
        super().__init__(*args, **kwargs)

    def _get_fingerprint(self) -> str:
        return self.key  # computed once per upload (tuspy would read the file again at every URL change)

    def create_url(self) -> str:
        headers = {**self.get_url_creation_headers(), "Idempotency-Key": self.idempotency_key}
        response = self.sdk.request("POST", "/uploads/", headers=headers, idempotent=True)
        return urljoin(self.client.url, response.headers["Location"])

    def get_offset(self) -> int:
        response = self.sdk.request("HEAD", self.url, headers=TUS)
        self.job_id = response.headers.get("Job-Id") or self.job_id
        return int(response.headers["Upload-Offset"])

    def _do_request(self) -> None:
        """One PATCH of the next chunk; a busy answer or a broken connection is resumed where the server is."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.request = TusRequest(self)
            try:
                self.request.perform()
            except TusUploadFailed as exc:
                status, failure = None, NetworkError(f"PATCH {self.url}: {exc}")
            else:
                status = self.request.status_code
                if 200 <= status < 300:
                    self.job_id = self.request.response_headers.get("job-id") or self.job_id
                    return
                failure = _error(status, self.request.response_content, self.request.response_headers)
                if status not in RETRIED_STATUSES:
                    raise failure
            if attempt == MAX_ATTEMPTS:
                raise failure
            retry_after = retry_after_seconds(self.request.response_headers.get("retry-after")) if status else None
            time.sleep(retry_after if retry_after is not None else min(2 ** attempt, 30))
            self.offset = self.get_offset()
            if self.offset >= self.stop_at:
                return  # the server had it all (the answer was lost)


def _error(status: int, content: Optional[bytes], headers: Dict[str, str]) -> ApiError:
    # tuspy hands the answer's headers over with lower-case names: looked up case-insensitively
    return error_from(status, content, CaseInsensitiveDict(headers), "upload refused")


class TusUpload:
    """One file's resumable upload."""

    def __init__(self, sdk: "Client", path: Path, metadata: Dict[str, str], resume: bool = True):
        self.sdk, self.path, self.metadata, self.resume = sdk, path, metadata, resume
        stat = path.stat()
        fingerprinter = FileFingerprint([sdk.url, str(path.resolve()), stat.st_size, stat.st_mtime_ns, metadata])
        with open(path, "rb") as stream:
            self.key = fingerprinter.get_fingerprint(stream)

    def _uploader(self, stream: IO) -> _Uploader:
        tus = TusClient(f"{self.sdk.url}/uploads/", headers={**TUS, **self.sdk.headers})
        return _Uploader(self.sdk, self.key, file_stream=stream, client=tus, chunk_size=self.sdk.chunk_size,
                         metadata=self.metadata, store_url=self.resume, url_storage=self.sdk.url_store)

    def _resumed_or_new(self, stream: IO) -> _Uploader:
        """The upload a previous run left (its URL stored under this file's fingerprint), or a new one
        when there is none or the server no longer knows it (finished and gone, expired, another user's)."""
        try:
            return self._uploader(stream)
        except ApiError as exc:
            if exc.status not in (404, 410):
                raise
            self.sdk.url_store.remove_item(self.key)
            return self._uploader(stream)

    def run(self, on_progress=None) -> Upload:
        with open(self.path, "rb") as stream:
            uploader = self._resumed_or_new(stream)
            size, resumed_from = uploader.get_file_size(), uploader.offset if uploader.url else 0
            if not uploader.url:
                uploader.set_url(uploader.create_url())
                uploader.offset = 0
            if on_progress:
                on_progress(uploader.offset, size)
            while uploader.offset < size:
                uploader.upload_chunk()
                if on_progress:
                    on_progress(uploader.offset, size)
            if uploader.job_id is None:
                uploader.get_offset()  # finished by an earlier run: HEAD names the job
            if self.resume:
                self.sdk.url_store.remove_item(self.key)  # its job exists now
        if uploader.job_id is None:
            raise ApiError(502, "no_job_id", f"the server finished {uploader.url} without naming its job")
        return Upload(job_id=uploader.job_id, url=uploader.url, size=size, resumed_from=resumed_from)
