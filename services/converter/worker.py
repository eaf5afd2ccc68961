"""The conversion of one job: claim it, read the video, extract MP3, store it, tell notification.

Idempotent by job id: a job already done or failed is only re-announced; a job another
live worker holds is retried later; a crashed worker's partial MP3 is removed by the
next attempt. The MP3 becomes visible only when the job turns `done`.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid

from services.common import config, messaging, metrics, storage, telemetry
from services.common.messaging import Delivery, PermanentError, TransientError

from . import media, source

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)
WORK_PREFIX = "vid2mp3-"
VIDEO_SERVER = source.VideoServer()  # one loopback server per process


class LeaseKeeper(threading.Thread):
    """Renews this worker's claim on a job while it converts, so nobody takes it over."""

    def __init__(self, job_id: str, worker_id: str, lease: float):
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.job_id, self.worker_id, self.lease = job_id, worker_id, lease
        self.done = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.done.wait(self.lease / 3):
            try:
                if not storage.renew_lease(self.job_id, self.worker_id, self.lease):
                    self.lost = True
                    return
            except Exception:  # MongoDB blip: try again next tick; the lease has slack
                log.warning("lease renewal failed", extra={"job_id": self.job_id})


def clean_stale_work_dirs(root: str) -> None:
    """Remove temp folders of converters that died (kill -9 skips their own clean-up)."""
    for name in os.listdir(root):
        if not name.startswith(WORK_PREFIX):
            continue
        try:
            pid = int(name[len(WORK_PREFIX):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except (ValueError, PermissionError):
            continue


class Converter:
    def __init__(self, publisher: messaging.Publisher):
        self.publisher = publisher
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.work_root = config.env("WORK_DIR") or tempfile.gettempdir()
        os.makedirs(self.work_root, exist_ok=True)
        clean_stale_work_dirs(self.work_root)

    # ---- message entry points (called by messaging.Consumer)
    def handle(self, delivery: Delivery) -> None:
        job_id = delivery.json().get("job_id")
        if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
            raise PermanentError("message has no valid job_id")
        token = telemetry.job_context(job_id)
        try:
            self._handle_job(job_id, delivery)
        finally:
            telemetry.detach(token)

    def on_retry(self, delivery: Delivery, reason: str) -> None:
        metrics.JOBS.labels("retried").inc()
        job_id = _job_id_of(delivery)
        if job_id:
            try:
                storage.release_job(job_id, self.worker_id)
            except Exception:
                pass  # the lease runs out by itself

    def on_give_up(self, delivery: Delivery, reason: str) -> None:
        """Dead-lettered: the job ends failed (a system reason) and its owner hears about it."""
        metrics.JOBS.labels("dead_lettered").inc()
        job_id = _job_id_of(delivery)
        if job_id and storage.finish_job(job_id, None, "failed",
                                         reason="internal error: the conversion could not be completed; "
                                                "please upload again", system_failure=True):
            self._announce(job_id, "failed")

    # ---- the job
    def _handle_job(self, job_id: str, delivery: Delivery) -> None:
        if delivery.published_at:
            metrics.observe(metrics.QUEUE_WAIT, max(time.time() - delivery.published_at, 0))
        job = storage.get_job(job_id)
        if job is None:
            raise PermanentError(f"unknown job {job_id}")
        if job["status"] in ("done", "failed"):
            # A redelivery or a duplicate: the work is done; make sure notification heard of it.
            log.info("job already finished, re-announcing", extra={"job_id": job_id, "status": job["status"]})
            self._announce(job_id, job["status"])
            return
        claimed = storage.claim_job(job_id, self.worker_id, config.env_float("JOB_LEASE_SECONDS"))
        if claimed is None:
            raise TransientError("job is held by another converter; retrying after its lease")
        keeper = LeaseKeeper(job_id, self.worker_id, config.env_float("JOB_LEASE_SECONDS"))
        keeper.start()
        metrics.JOBS_IN_PROGRESS.inc()
        try:
            status = self._convert(claimed, keeper)
        finally:
            keeper.done.set()
            metrics.JOBS_IN_PROGRESS.dec()
        if status:
            self._announce(job_id, status)

    def _convert(self, job: dict, keeper: LeaseKeeper) -> str | None:
        """Run the conversion; returns the final status, or None when another worker took over."""
        job_id = job["_id"]
        work_dir = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=self.work_root)
        mp3_id = None
        served = read_span = None
        try:
            if job.get("pending_mp3_id"):  # left by a worker that died mid-job
                storage.delete_file(storage.mp3s(), job["pending_mp3_id"])
            videos = storage.videos()
            stored = storage.file_info(videos, job["video_id"])
            if stored is None:
                raise PermanentError("the uploaded file is missing from storage")
            # ffprobe and ffmpeg read the video from GridFS over loopback HTTP while they work
            # (source.py): no copy on disk first, and the read overlaps decoding.
            read_span = tracer.start_span("gridfs read video", attributes={"vid2mp3.bytes": stored["length"]})
            served = VIDEO_SERVER.serve(videos, job["video_id"], stored["length"])
            with tracer.start_as_current_span("ffprobe") as span:
                info = media.probe(served.url)
                span.set_attributes({"media.duration_s": info.duration or 0, "media.audio_codec": info.audio_codec or "",
                                     "media.audio_streams": info.audio_streams, "media.video_streams": info.video_streams})
                media.check_convertible(info)
            mp3_id = storage.new_id()
            if not storage.set_job_fields(job_id, self.worker_id, {"pending_mp3_id": mp3_id}):
                log.warning("lost the job to another converter", extra={"job_id": job_id})
                storage.delete_file(storage.mp3s(), mp3_id)
                return None
            # ffmpeg's output streams straight into GridFS: no temp MP3, storage overlaps encoding.
            started = time.monotonic()
            with tracer.start_as_current_span("ffmpeg convert"), tracer.start_as_current_span("gridfs write mp3") as span:
                upload = storage.mp3s().open_upload_stream_with_id(
                    mp3_id, media_name(job), metadata={"job_id": job_id, "owner": job["owner"]})
                try:
                    written = media.to_mp3(served.url, info, upload, os.path.join(work_dir, "ffmpeg.log"))
                    _check_read(served)  # a short read must not pass for a finished MP3
                    upload.close()
                except BaseException:
                    upload.abort()  # no half MP3 left behind
                    raise
                span.set_attribute("vid2mp3.bytes", written)
            metrics.observe(metrics.CONVERSION_DURATION, time.monotonic() - started)
            metrics.BYTES_IN.inc(stored["length"])
            audio_seconds = info.audio_seconds
            if keeper.lost or not storage.finish_job(job_id, self.worker_id, "done", mp3_id=mp3_id,
                                                     audio_seconds=audio_seconds, pending_mp3_id=None):
                storage.delete_file(storage.mp3s(), mp3_id)
                log.warning("lost the job to another converter", extra={"job_id": job_id})
                return None
            metrics.BYTES_OUT.inc(written)
            metrics.AUDIO_SECONDS.inc(audio_seconds)
            metrics.JOBS.labels("success").inc()
            metrics.observe(metrics.JOB_E2E_LATENCY, max(time.time() - job["created"], 0))
            log.info("job converted", extra={"job_id": job_id, "audio_seconds": audio_seconds, "mp3_bytes": written})
            return "done"
        except PermanentError as exc:
            if served is not None:
                _check_read(served)  # ffprobe/ffmpeg failing on a storage error is not the media's fault
            # The user's media is at fault: the job fails with the reason, nothing is retried.
            if mp3_id:
                storage.delete_file(storage.mp3s(), mp3_id)
            from opentelemetry import trace

            telemetry.record_error(trace.get_current_span(), exc)
            if not storage.finish_job(job_id, self.worker_id, "failed", reason=str(exc), pending_mp3_id=None):
                return None
            metrics.JOBS.labels("failed").inc()
            log.info("job failed", extra={"job_id": job_id, "reason": str(exc)})
            return "failed"
        finally:
            if served is not None:
                VIDEO_SERVER.forget(served)
                read_span.set_attributes({"vid2mp3.read_requests": served.requests,
                                          "vid2mp3.bytes_sent": served.bytes_sent})
                if served.error is not None:
                    telemetry.record_error(read_span, served.error)
            if read_span is not None:  # also when registering the video failed
                read_span.end()
            shutil.rmtree(work_dir, ignore_errors=True)

    def _announce(self, job_id: str, status: str) -> None:
        self.publisher.publish(config.env("MP3_QUEUE"), {"job_id": job_id, "status": status},
                               message_id=f"{job_id}:{status}")


def _check_read(served: source.ServedVideo) -> None:
    if served.error is not None:
        raise TransientError(f"reading the video from storage failed: {type(served.error).__name__}")


def media_name(job: dict) -> str:
    return os.path.splitext(job.get("filename") or "audio")[0] + ".mp3"


def _job_id_of(delivery: Delivery) -> str | None:
    try:
        job_id = delivery.json().get("job_id")
    except PermanentError:
        return None
    return job_id if isinstance(job_id, str) else None
