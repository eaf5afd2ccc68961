"""What `convert` and `watch` do with many files: a bounded number at once, each uploaded (resumably),
followed to its end and downloaded, with a progress bar per file; one result per file."""
from __future__ import annotations

import hashlib
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from . import config
from .errors import JOB_FAILED, OK, SERVER, JobFailed, Vid2mp3Error
from .models import Job
from .sdk import Client, output_path


@dataclass
class Result:
    """One file's outcome, as `--json` prints it."""

    file: str
    job_id: Optional[str] = None
    status: Optional[str] = None
    output: Optional[str] = None
    outputs: List[str] = field(default_factory=list)  # every result saved (several `outputs`: one each)
    reason: Optional[str] = None
    resumed_from: int = 0
    error: Optional[Dict[str, Any]] = None
    exit_code: int = OK

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Display:
    """A progress bar per file on stderr (only on a terminal, never with --json)."""

    def __init__(self, enabled: bool):
        self.progress = Progress(TextColumn("{task.description}", style="bold"), BarColumn(),
                                 TextColumn("{task.fields[status]}"), DownloadColumn(),
                                 console=Console(stderr=True), disable=not enabled, transient=False)

    def __enter__(self) -> "Display":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def add(self, path: Path, size: Optional[int] = None) -> TaskID:
        """A bar for `path` (its size read from disk unless given: a URL import's is not known yet)."""
        return self.progress.add_task(path.name, total=path.stat().st_size if size is None else size,
                                      status="waiting")

    def bytes(self, task: TaskID, status: str) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            self.progress.update(task, completed=done, total=total or None, status=status)
        return update

    def job(self, task: TaskID) -> Callable[[Job], None]:
        def update(job: Job) -> None:
            text = job.status + (f" {job.progress:.0f}%" if job.progress is not None else "")
            self.progress.update(task, status=text)
        return update

    def status(self, task: TaskID, text: str) -> None:
        self.progress.update(task, status=text)


def convert_one(client: Client, path: Path, options: Dict[str, Any], out: Optional[Path],
                display: Display, before_download: Callable[[Path], None] = lambda target: None) -> Result:
    """Upload, wait, download one file; every error becomes the result's, with its exit code."""
    result = Result(file=str(path))
    task = display.add(path)

    def run() -> None:
        upload = client.upload(path, options, on_progress=display.bytes(task, "uploading"))
        result.job_id, result.resumed_from = upload.job_id, upload.resumed_from
        _finish(client, upload.job_id, path, options, out or path.parent, display, task, result, before_download)

    return _guarded(run, result, display, task)


def import_one(client: Client, source_url: str, options: Dict[str, Any], out: Optional[Path],
               display: Display) -> Result:
    """Have the server fetch `source_url`, wait, download the result into `out` (or the current folder)."""
    result = Result(file=source_url)
    task = display.add(Path(urlsplit(source_url).path or "video"), size=0)

    def run() -> None:
        # a key per run: a lost answer is retried without a second job; a new run imports again
        job = client.import_url(source_url, options, idempotency_key=str(uuid.uuid4()))
        result.job_id = job.id
        _finish(client, job.id, Path(job.filename or "video"), options, out or Path("."), display, task, result)

    return _guarded(run, result, display, task)


def _finish(client: Client, job_id: str, source: Path, options: Dict[str, Any], folder: Path, display: Display,
            task: TaskID, result: Result, before_download: Callable[[Path], None] = lambda target: None) -> None:
    """Wait for the job, then download its result (every result when several outputs were asked for)."""
    job = client.wait(job_id, on_update=display.job(task))
    result.status, result.reason = job.status, job.reason
    if not job.done:
        raise JobFailed(job)
    if options.get("outputs"):
        saved = client.download_all(job, folder, source=source, on_progress=display.bytes(task, "downloading"),
                                    before_download=before_download)
    else:
        target = output_path(source, job, folder)
        before_download(target)
        saved = [client.download(job, target, on_progress=display.bytes(task, "downloading"))]
    result.output, result.outputs = str(saved[0]), [str(each) for each in saved]
    display.status(task, "done → " + ", ".join(each.name for each in saved))


def _guarded(run: Callable[[], None], result: Result, display: Display, task: TaskID) -> Result:
    """Run one file's or URL's work; every error becomes the result's, with its exit code."""
    try:
        run()
    except Vid2mp3Error as exc:
        result.exit_code = exc.exit_code
        if not isinstance(exc, JobFailed):
            result.error = {"code": getattr(exc, "code", type(exc).__name__), "message": str(exc)}
        display.status(task, f"[red]{result.status or 'error'}[/red]: {result.reason or exc}")
    except Exception as exc:  # noqa: BLE001 - one file's trouble (a bug included) must not hide the others'
        result.exit_code, result.error = SERVER, {"code": type(exc).__name__, "message": str(exc)}
        display.status(task, f"[red]error[/red]: {exc}")
    return result


def convert_all(client: Client, paths: List[Path], options: Dict[str, Any],
                out: Optional[Path], parallel: int, display: Display,
                source_urls: Optional[List[str]] = None) -> List[Result]:
    """Every file (then every URL import), `parallel` at once. More files than the account may have
    unfinished jobs is fine: an upload refused by the quota waits (client.request) until one of ours
    ends, then goes on."""
    pool = ThreadPoolExecutor(max(1, parallel), thread_name_prefix="convert")
    try:
        futures = [pool.submit(convert_one, client, path, options, out, display) for path in paths]
        futures += [pool.submit(import_one, client, url, options, out, display) for url in source_urls or []]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: no wait for uploads (they resume next run)


def exit_code(results: List[Result]) -> int:
    """The largest code of the files (0 when every one succeeded)."""
    return max((r.exit_code for r in results), default=OK)


RETRY_SECONDS = 30  # watch: the wait before a file whose conversion hit an error is tried again


class Watcher:
    """Converts the files that appear in a folder. A file is taken once its size and modification time
    stayed the same over one interval (no half-written copy is sent); names starting with a dot are
    skipped (partial downloads, editors' files), and so is every result this watcher writes. What it
    converted is remembered in the cache folder, so a restart does not convert it again."""

    def __init__(self, client: Client, folder: Path, out: Optional[Path], options: Dict[str, Any],
                 parallel: int, display: Display, report: Callable[[Result], None]):
        self.client, self.folder, self.out, self.options = client, folder, out, options
        self.display, self.report = display, report
        self.pool = ThreadPoolExecutor(max(1, parallel), thread_name_prefix="watch")
        key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
        self.state_path = config.cache_dir() / f"watch-{key}.json"
        state = config.read_json(self.state_path)
        self.converted: Dict[str, List[int]] = state.get("converted", {})
        self.produced: Set[str] = set(state.get("produced", []))
        self.seen: Dict[Path, tuple] = {}
        self.running: Dict[Path, Future] = {}
        self.retry_at: Dict[Path, float] = {}  # a file whose conversion could not be done (server down) waits
        self.lock = threading.Lock()

    def scan(self) -> None:
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or not path.is_file() or str(path.resolve()) in self.produced:
                continue
            stat = path.stat()
            now = (stat.st_size, stat.st_mtime_ns)
            stable = self.seen.get(path) == now and stat.st_size > 0
            self.seen[path] = now
            if (stable and path not in self.running and self.converted.get(path.name) != list(now)
                    and self.retry_at.get(path, 0) <= time.monotonic()):
                self.running[path] = self.pool.submit(self._convert, path, now)

    def _convert(self, path: Path, version: tuple) -> None:
        try:
            result = convert_one(self.client, path, self.options, self.out, self.display,
                                 before_download=self._claim)
            if result.exit_code in (OK, JOB_FAILED):  # a failed job is not retried; a network error is, later
                self._remember(path, version)
            else:
                self.retry_at[path] = time.monotonic() + RETRY_SECONDS
            self.report(result)
        finally:
            self.running.pop(path, None)

    def _claim(self, target: Path) -> None:
        """A result is ours before it exists: the scan never takes it for a new video."""
        with self.lock:
            self.produced.add(str(target.resolve()))
            self._save()

    def _remember(self, path: Path, version: tuple) -> None:
        with self.lock:
            self.converted[path.name] = list(version)
            self._save()

    def _save(self) -> None:
        config.write_private(self.state_path, {"folder": str(self.folder.resolve()), "converted": self.converted,
                                               "produced": sorted(self.produced)})

    def run(self, interval: float) -> None:
        while True:
            self.scan()
            time.sleep(interval)
