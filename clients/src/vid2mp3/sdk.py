"""The Python SDK: `Client(url, token=... | api_key=...)` and the calls of the public API.

Busy answers (429/503 with Retry-After) are waited out and retried, within `busy_wait` seconds: an
upload refused by the active-jobs quota waits for Retry-After or for one of this client's jobs to end,
whichever comes first, then tries again. The CLI (cli.py) is built on this and nothing else.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote, unquote, urljoin

import requests

from . import config, events
from .errors import ApiError, AuthError, JobFailed, NetworkError, UsageError, error_from
from .models import Account, Job, Preset, Upload

Progress = Callable[[int, int], None]  # (bytes so far, total bytes)
JobRef = Union[str, Job]
Statuses = Union[None, str, Sequence[str]]  # one job status, or several (any of them)

TRANSIENT_STATUSES = (429, 503)
IDEMPOTENT = ("GET", "HEAD", "DELETE", "OPTIONS")


def _statuses(status: Statuses) -> List[str]:
    return [status] if isinstance(status, str) else list(status or [])


def error_of(response: requests.Response) -> ApiError:
    """The API's error answer as an exception (errors.error_from)."""
    return error_from(response.status_code, response.content, response.headers, response.reason)


class Client:
    """A user of one vid2mp3 server. `token` is a JWT from login, `api_key` a personal key (`v2m_…`):
    both are sent as `Authorization: Bearer`. Thread-safe: each thread gets its own HTTP session."""

    def __init__(self, url: str = config.DEFAULT_URL, token: Optional[str] = None, api_key: Optional[str] = None,
                 *, timeout: float = 30, busy_wait: float = 3600, chunk_size: int = 8 * 1024 * 1024,
                 url_store: Optional[config.UrlStore] = None, poll_interval: float = 1.0):
        self.url = url.rstrip("/")
        self.credential = token or api_key
        self.timeout, self.busy_wait, self.chunk_size = timeout, busy_wait, chunk_size
        self.poll_interval = poll_interval
        self.url_store = url_store if url_store is not None else config.UrlStore()
        self._local = threading.local()
        self._job_ended = threading.Condition()  # quota waits wake when one of our jobs ends

    # ------------------------------------------------------------ HTTP

    @property
    def headers(self) -> Dict[str, str]:
        if not self.credential:
            raise AuthError(401, "no_credential", "no credential: run `vid2mp3 login`, or set VID2MP3_TOKEN "
                            "or VID2MP3_API_KEY")
        return {"Authorization": f"Bearer {self.credential}"}

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["User-Agent"] = "vid2mp3-client/0.1"
        return self._local.session

    def request(self, method: str, path: str, *, auth: bool = True, busy_retry: bool = True,
                idempotent: Optional[bool] = None, **kwargs: Any) -> requests.Response:
        """One API call: network failures of idempotent calls (GET, HEAD, DELETE, or a POST with an
        Idempotency-Key) are retried 3 times, 429/503 with Retry-After waited out within `busy_wait`;
        any other error answer raises ApiError."""
        idempotent = method in IDEMPOTENT if idempotent is None else idempotent
        deadline, failures = time.monotonic() + self.busy_wait, 0
        headers = {**(self.headers if auth else {}), **kwargs.pop("headers", {})}
        timeout = kwargs.pop("timeout", self.timeout)
        while True:
            try:
                response = self._session().request(method, urljoin(self.url + "/", path.lstrip("/")),
                                                   headers=headers, timeout=timeout, **kwargs)
            except requests.RequestException as exc:
                failures += 1
                if not idempotent or failures > 3:
                    raise NetworkError(f"{method} {self.url}{path}: {exc}") from exc
                time.sleep(failures)
                continue
            if response.status_code < 400:
                return response
            error = error_of(response)
            response.close()
            wait = error.retry_after
            if (busy_retry and response.status_code in TRANSIENT_STATUSES and wait is not None
                    and time.monotonic() + wait < deadline):
                self._pause(wait, quota=error.code == "quota_exceeded")
                continue
            raise error

    def _pause(self, seconds: float, quota: bool = False) -> None:
        """Wait before a retry; a quota refusal also ends its wait when one of our jobs ends."""
        if quota:
            with self._job_ended:
                self._job_ended.wait(seconds)
        else:
            time.sleep(seconds)

    def _ended(self) -> None:
        with self._job_ended:
            self._job_ended.notify_all()

    @staticmethod
    def verify_webhook(secret: str, body: Union[bytes, str], headers: Dict[str, str]) -> Dict[str, Any]:
        """The webhook's event if genuine, else InvalidWebhook (see webhooks.verify_webhook)."""
        from .webhooks import verify_webhook

        return verify_webhook(secret, body, headers)

    # ------------------------------------------------------------ account

    @staticmethod
    def login(url: str, email: str, password: str, timeout: float = 30) -> str:
        """A JWT for `email` (POST /login with HTTP Basic, as the web app does)."""
        try:
            response = requests.post(f"{url.rstrip('/')}/login", auth=(email, password), timeout=timeout)
        except requests.RequestException as exc:
            raise NetworkError(f"POST {url}/login: {exc}") from exc
        if response.status_code != 200:
            raise error_of(response)
        return response.text.strip()

    def me(self) -> Account:
        body = self.request("GET", "/me").json()
        return Account(email=body.get("email"), admin=bool(body.get("admin")), usage=body.get("usage") or {},
                       limits=body.get("limits"), webhook_secret=body.get("webhook_secret"))

    # ------------------------------------------------------------ uploads

    def upload(self, path: Union[str, Path], options: Optional[Dict[str, Any]] = None, *,
               preset: Optional[str] = None, callback_url: Optional[str] = None,
               on_progress: Optional[Progress] = None, resume: bool = True) -> Upload:
        """Send a video by tus (resumable): a run interrupted before the end resumes at the server's
        offset when the same file (same path, size, modification time and options) is sent again.
        `preset` names a server preset (`presets()`): its options are the defaults, `options` override them."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        metadata = {"filename": path.name, **({"preset": preset} if preset else {}), **_option_fields(options)}
        if callback_url:
            metadata["callback_url"] = callback_url
        from .uploads import TusUpload  # tuspy loads aiohttp (~0.5 s): only when something is uploaded

        return TusUpload(self, path, metadata, resume=resume).run(on_progress)

    def import_url(self, source_url: str, options: Optional[Dict[str, Any]] = None, *,
                   callback_url: Optional[str] = None, idempotency_key: Optional[str] = None) -> Job:
        """A job whose video the server fetches from `source_url` (http or https): the job, status `fetching`.
        With an `idempotency_key`, a retry of a lost answer gets the first job, not a second one."""
        body: Dict[str, Any] = {"source_url": source_url, **_option_fields(options)}
        if callback_url:
            body["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Job.from_view(self.request("POST", "/jobs", json=body, headers=headers,
                                          idempotent=bool(idempotency_key)).json())

    # ------------------------------------------------------------ presets

    def presets(self) -> List[Preset]:
        """The server's built-in presets, then yours by name."""
        return [Preset.from_view(view) for view in self.request("GET", "/me/presets").json()["presets"]]

    def preset(self, name: str) -> Preset:
        return Preset.from_view(self.request("GET", f"/me/presets/{_path_part(name)}").json())

    def save_preset(self, name: str, options: Dict[str, Any]) -> Preset:
        """Store (or replace) your preset `name`: output options as `upload` takes them."""
        return Preset.from_view(self.request("PUT", f"/me/presets/{_path_part(name)}", idempotent=True,
                                             json=_option_fields(options)).json())

    def delete_preset(self, name: str) -> None:
        self.request("DELETE", f"/me/presets/{_path_part(name)}")

    # ------------------------------------------------------------ jobs

    def job(self, job: JobRef) -> Job:
        return Job.from_view(self.request("GET", f"/jobs/{_job_id(job)}").json())

    def jobs(self, status: Optional[str] = None, limit: int = 20, offset: int = 0) -> List[Job]:
        params: Dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return [Job.from_view(view) for view in self.request("GET", "/jobs", params=params).json()["jobs"]]

    def jobs_page(self, status: Statuses = None, limit: int = 20, cursor: Optional[str] = None,
                  created_after: Optional[str] = None, created_before: Optional[str] = None
                  ) -> Tuple[List[Job], Optional[str]]:
        """One page of your jobs, newest first, and the server's `next_cursor` (None on the last page):
        pass it back as `cursor`, with the same filters. `status` is one status or several; the times
        are RFC 3339 with an offset (both exclusive)."""
        params: Dict[str, Any] = {"limit": limit, "cursor": cursor, "status": _statuses(status),
                                  "created_after": created_after, "created_before": created_before}
        page = self.request("GET", "/jobs", params={k: v for k, v in params.items() if v}).json()
        return [Job.from_view(view) for view in page["jobs"]], page.get("next_cursor")

    def all_jobs(self, status: Statuses = None, page_size: int = 100, created_after: Optional[str] = None,
                 created_before: Optional[str] = None, cursor: Optional[str] = None) -> Iterator[Job]:
        """Every job of yours, newest first (or from the page after `cursor`), a page at a time by the
        server's cursor (`next_cursor`, the same as its Link rel="next"): each job once, also while new
        ones arrive."""
        while True:
            found, cursor = self.jobs_page(status, page_size, cursor, created_after, created_before)
            yield from found
            if not cursor:
                return

    def cancel(self, job: JobRef) -> Job:
        return Job.from_view(self.request("POST", f"/jobs/{_job_id(job)}/cancel").json())

    def delete(self, job: JobRef) -> None:
        self.request("DELETE", f"/jobs/{_job_id(job)}")

    def events(self, job: JobRef, last_event_id: Optional[str] = None) -> Iterator[Job]:
        """The job's view at once and at every change, until a final status (GET /jobs/<id>/events).
        Raises ApiError 429/503 when the server has no stream for us (poll then: `wait` does), and
        404 if the job is deleted meanwhile."""
        for _, job_view in self._event_stream(_job_id(job), last_event_id):
            yield job_view

    def _event_stream(self, job_id: str, last_event_id: Optional[str]) -> Iterator[Tuple[Optional[str], Job]]:
        """(event id, view) pairs; the id is the job's revision, sent back as Last-Event-ID to resume."""
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {})}
        with self.request("GET", f"/jobs/{job_id}/events", headers=headers, stream=True, busy_retry=False,
                          timeout=(self.timeout, 60)) as response:  # keep-alives come every 15 s
            response.encoding = "utf-8"  # an event stream is always UTF-8, whatever its Content-Type says
            for event in events.parse(response.iter_lines(decode_unicode=True)):
                if event.event == "deleted":
                    raise ApiError(404, "not_found", f"job {job_id} was deleted")
                if event.data:
                    yield event.id, Job.from_view(json.loads(event.data))

    def wait(self, job: JobRef, timeout: Optional[float] = None,
             on_update: Optional[Callable[[Job], None]] = None) -> Job:
        """The job once final, followed live (server-sent events), or by polling GET /jobs/<id> when the
        server has no stream for us or the stream breaks; `on_update` sees every view on the way."""
        job_id = _job_id(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            latest = self._follow_events(job_id, deadline, on_update)
            if latest is None or not latest.final:
                latest = self._poll(job_id, deadline, on_update)
        finally:
            self._ended()
        return latest

    def _follow_events(self, job_id: str, deadline: Optional[float], on_update) -> Optional[Job]:
        latest, last_id, breaks = None, None, 0
        while breaks < 3 and (deadline is None or time.monotonic() < deadline):
            try:
                for event_id, latest in self._event_stream(job_id, last_id):
                    last_id = event_id
                    if on_update:
                        on_update(latest)
                    if latest.final or (deadline is not None and time.monotonic() > deadline):
                        return latest
            except ApiError as exc:
                if exc.status in TRANSIENT_STATUSES:
                    return latest  # no stream place for us: poll
                raise
            except (requests.RequestException, NetworkError):
                pass
            breaks += 1  # the stream ended or broke before a final status: open it again where it was
        return latest

    def _poll(self, job_id: str, deadline: Optional[float], on_update) -> Job:
        last_view, etag = None, None
        while True:
            headers = {"If-None-Match": etag} if etag else {}
            response = self.request("GET", f"/jobs/{job_id}", headers=headers)
            if response.status_code != 304:  # 304: unchanged since the last poll
                etag = response.headers.get("ETag")
                job = Job.from_view(response.json())
                if on_update and (last_view is None or job.raw != last_view.raw):
                    on_update(job)
                last_view = job
            if last_view is not None and last_view.final:
                return last_view
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {last_view and last_view.status}")
            time.sleep(self.poll_interval)

    # ------------------------------------------------------------ results

    def download(self, job: JobRef, dest: Union[str, Path] = ".", on_progress: Optional[Progress] = None,
                 fid: Optional[str] = None) -> Path:
        """Save a done job's result (its first, or the one `fid` names: an entry of `job.outputs`): into the
        folder `dest` under the server's name for it, or as the file `dest`. Written beside the target
        first, then renamed: no half file under its name."""
        job = self._done_job(job)
        with self.request("GET", "/download", params={"fid": fid or job.mp3_id}, stream=True) as response:
            dest = Path(dest)
            target = dest / _served_name(response, job) if dest.is_dir() else dest
            total, got = int(response.headers.get("Content-Length") or 0), 0
            part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                with open(part, "wb") as f:
                    for block in response.iter_content(256 * 1024):
                        f.write(block)
                        got += len(block)
                        if on_progress:
                            on_progress(got, total)
                os.replace(part, target)
            except requests.RequestException as exc:
                raise NetworkError(f"download of job {job.id} broke: {exc}") from exc
            except OSError as exc:
                raise UsageError(f"cannot write {target}: {exc}") from exc
            finally:
                if part.exists():
                    part.unlink()
        return target

    def download_all(self, job: JobRef, folder: Union[str, Path] = ".", source: Optional[Path] = None,
                     on_progress: Optional[Progress] = None,
                     before_download: Callable[[Path], None] = lambda target: None) -> List[Path]:
        """Save every result of a done job (several `outputs`, or chapters) into `folder`, each under the
        server's name for it (never over `source`, the video it was made from); their paths, in order.
        `before_download` hears of each target before it is written."""
        job = self._done_job(job)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for output in job.outputs:
            target = folder / (output.get("filename") or f"{job.id}.{output.get('mp3_id')}.{output.get('format')}")
            if source is not None and target.resolve() == Path(source).resolve():
                target = target.with_name(f"{target.stem}.converted{target.suffix}")
            before_download(target)
            saved.append(self.download(job, target, on_progress, fid=output["mp3_id"]))
        return saved

    def _done_job(self, job: JobRef) -> Job:
        job = job if isinstance(job, Job) and job.done else self.job(job)
        if not job.done:
            raise JobFailed(job)
        return job

    def convert(self, path: Union[str, Path], out: Optional[Union[str, Path]] = None,
                options: Optional[Dict[str, Any]] = None, preset: Optional[str] = None) -> Path:
        """Upload, wait, download beside the video (or into `out`); JobFailed if the job did not end done."""
        path = Path(path)
        job = self.wait(self.upload(path, options, preset=preset).job_id)
        if not job.done:
            raise JobFailed(job)
        if (options or {}).get("outputs"):  # several results: all saved, the first one's path answered
            return self.download_all(job, Path(out) if out else path.parent, source=path)[0]
        return self.download(job, output_path(path, job, out))


def output_path(source: Path, job: Job, out: Optional[Union[str, Path]] = None) -> Path:
    """Where a result goes: `out` (or the video's folder) / the video's name with the format's
    extension; never over the video itself (an MP3 converted to MP3)."""
    folder = Path(out) if out else source.parent
    extension = (job.options or {}).get("format") or "mp3"
    target = folder / f"{source.stem}.{extension}"
    if target.resolve() == source.resolve():
        target = folder / f"{source.stem}.converted.{extension}"
    return target


def _served_name(response: requests.Response, job: Job) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    found = re.search(r"filename\*=UTF-8''([^;]+)", disposition) or re.search(r'filename="([^"]+)"', disposition)
    name = unquote(found.group(1)) if found else f"{job.id}.mp3"
    return os.path.basename(name.replace("\\", "/")) or f"{job.id}.mp3"  # never a path the server chose


def _job_id(job: JobRef) -> str:
    return job.id if isinstance(job, Job) else str(job)


def _option_fields(options: Optional[Dict[str, Any]]) -> Dict[str, str]:
    """Output options as the API takes them: text, booleans as true/false (false overrides a preset's
    true), None left out; `outputs` (a list of option dicts: several results from one video) as the JSON
    array the server reads."""
    fields = {}
    for name, value in (options or {}).items():
        if value is None:
            continue
        if name == "outputs":
            if value:
                fields[name] = json.dumps([_option_fields(each) for each in value], separators=(",", ":"))
            continue
        fields[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return fields


def _path_part(name: str) -> str:
    return quote(name, safe="")


def fingerprint_of(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
