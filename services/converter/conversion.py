"""The conversion of one job, top-down: claim it, probe the video (probe.py), plan the result
(plan.py), encode it into storage (encode.py, command.py), finish and announce it.

Idempotent by job id: a job already done or failed is only re-announced; a job another
live worker holds is retried later; a crashed worker's partial result is removed by the
next attempt. The result becomes visible only when the job turns `done`.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from opentelemetry import trace

from services.common import config, jobs, messages, messaging, telemetry, workdirs
from services.common.jobs import Job, Status
from services.common.messages import VideoMessage
from services.common.messaging import Delivery, PermanentError, TransientError
from services.common.metrics import observe
from services.common.options import OptionError, Options
from services.common.storage import files, job_records, tombstones
from services.common.storage.connection import new_id

from . import encode, metrics, output_limit, plan, probe, source

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)
VIDEO_SERVER = source.VideoServer()  # one loopback server per process
SYSTEM_FAILURE = "internal error: the conversion could not be completed; please upload again"


class JobLost(Exception):
    """Another converter took the job over (this one's lease ran out): leave it to that one."""


@dataclass
class Encoded:
    result_id: str
    result_bytes: int
    video_bytes: int
    audio_seconds: float = 0.0


class LeaseKeeper(threading.Thread):
    """Renews this worker's claim on a job while it converts, so nobody takes it over, and
    notices within a tick when the job is no longer this worker's (cancelled, deleted, taken
    over): then `stop` is set, which stops ffmpeg."""

    TICK = 0.5  # a cancel stops ffmpeg within about this long

    def __init__(self, job_id: str, worker_id: str, lease: float):
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.job_id, self.worker_id, self.lease = job_id, worker_id, lease
        self.done = threading.Event()
        self.stop = threading.Event()
        self.lost = False

    def run(self) -> None:
        renewed = time.monotonic()
        while not self.done.wait(self.TICK):
            try:
                if time.monotonic() - renewed >= self.lease / 3:
                    held = job_records.renew_lease(self.job_id, self.worker_id, self.lease)
                    renewed = time.monotonic()
                else:
                    held = job_records.holds(self.job_id, self.worker_id)
            except Exception:  # MongoDB blip: try again next tick; the lease has slack
                log.warning("lease check failed", extra={"job_id": self.job_id})
                continue
            if not held:
                self.lost = True
                self.stop.set()
                return


class ProgressReporter:
    """Turns ffmpeg's encoded seconds into the job's `progress` and `eta_seconds`, written at most
    about once a second, and whenever it has moved 5 points."""

    # Nothing is written in a job's first second: most jobs are short clips done by then, and their
    # one progress write (ffmpeg's last report, at ~100 %) would come just before `done` replaces it.
    QUIET = 1.0

    def __init__(self, job_id: str, worker_id: str, total_seconds: float):
        self.job_id, self.worker_id, self.total = job_id, worker_id, total_seconds
        self.started = time.monotonic()
        self.written_at, self.written = 0.0, 0.0

    def __call__(self, encoded_seconds: float) -> None:
        now = time.monotonic()
        if self.total <= 0 or now - self.started < self.QUIET:
            return
        progress = min(encoded_seconds / self.total * 100, 99.9)  # 100 is `done`
        if progress <= self.written or (now - self.written_at < 1 and progress - self.written < 5):
            return
        elapsed = now - self.started
        eta = elapsed * (100 - progress) / progress if progress > 0 else None
        job_records.set_progress(self.job_id, self.worker_id, round(progress, 1), eta and round(eta, 1))
        self.written_at, self.written = now, progress


class Converter:
    def __init__(self, publisher: messaging.Publisher):
        self.publisher = publisher
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = config.env_float("JOB_LEASE_SECONDS")
        workdirs.clean_stale()

    # ---- message entry points (called by messaging.Consumer)
    def handle(self, delivery: Delivery) -> None:
        job_id = VideoMessage.parse(delivery).job_id
        token = telemetry.job_context(job_id)
        try:
            if delivery.published_at:
                observe(metrics.QUEUE_WAIT, max(time.time() - delivery.published_at, 0))
            self._handle_job(job_id)
        finally:
            telemetry.detach(token)

    def on_retry(self, delivery: Delivery, reason: str) -> None:
        metrics.JOBS.labels("retried").inc()
        try:
            job_records.release_job(VideoMessage.parse(delivery).job_id, self.worker_id)
        except Exception:
            pass  # the lease runs out by itself

    def on_give_up(self, delivery: Delivery, reason: str) -> None:
        """Dead-lettered: the job ends failed (a system reason) and its owner hears about it."""
        metrics.JOBS.labels("dead_lettered").inc()
        try:
            job_id = VideoMessage.parse(delivery).job_id
        except PermanentError:
            return
        if job_records.finish_job(job_id, None, Status.FAILED, reason=SYSTEM_FAILURE, system_failure=True):
            self._announce(job_id, Status.FAILED)

    # ---- the job
    def _handle_job(self, job_id: str) -> None:
        # Claim first: the usual message is for a queued job, and the claim is the one round trip it
        # needs; only a message that cannot claim its job reads the job to learn why.
        result_id = new_id()  # recorded by the claim: the job's writes before `done` are this one only
        job = job_records.claim_job(job_id, self.worker_id, self.lease_seconds, result_id=result_id)
        if job is None:
            self._not_claimed(job_id)
            return
        try:
            with self._lease(job) as keeper:
                status = self._convert(job, keeper, result_id)
        except JobLost:
            log.warning("lost the job to another converter", extra={"job_id": job_id})
            return
        self._announce(job_id, status)

    def _not_claimed(self, job_id: str) -> None:
        """The job could not be taken: deleted, unknown, finished already, or held by another worker."""
        job = job_records.get_job(job_id)
        if job is None:
            if tombstones.was_deleted(job_id):  # by its owner, since its message was published
                log.info("job deleted before its conversion, dropping its message", extra={"job_id": job_id})
                return
            raise PermanentError(f"unknown job {job_id}")
        if job.status in jobs.FINAL:
            # A redelivery or a duplicate: the work is done; make sure notification heard of it.
            # (A cancelled job was announced by whoever cancelled it.)
            log.info("job already finished", extra={"job_id": job_id, "status": job.status})
            if job.status in jobs.CONVERTER_OUTCOMES:
                self._announce(job_id, job.status)
            return
        raise TransientError("job is held by another converter; retrying after its lease")

    @contextmanager
    def _lease(self, job: Job) -> Iterator[LeaseKeeper]:
        keeper = LeaseKeeper(job.id, self.worker_id, self.lease_seconds)
        keeper.start()
        metrics.JOBS_IN_PROGRESS.inc()
        try:
            yield keeper
        except Exception:
            # Whatever failed after the job was taken away (cancelled, deleted: its files go at
            # once) no longer matters; ask now rather than wait for the keeper's next tick.
            if keeper.lost or not _still_held(job.id, self.worker_id):
                raise JobLost() from None
            raise
        finally:
            keeper.done.set()
            metrics.JOBS_IN_PROGRESS.dec()

    def _convert(self, job: Job, keeper: LeaseKeeper, result_id: str) -> Status:
        """Probe, encode into file `result_id` and finish; a PermanentError (the media's fault) ends the job failed.
        `job` is as it was before the claim: its `pending_mp3_id` is a dead attempt's partial result."""
        work_dir = workdirs.make()
        try:
            if job.pending_mp3_id:  # left by a worker that died mid-job
                files.delete_file(files.results(), job.pending_mp3_id)
            with served_video(job, work_dir) as served:
                try:
                    info = probed(served)
                    encoded = self._encode(job, served, info, keeper, result_id, os.path.join(work_dir, "ffmpeg.log"))
                except PermanentError:
                    check_read(served)  # the probe or ffmpeg failing on a storage error is not the media's fault
                    raise
            return self._finish_done(job, keeper, encoded)
        except PermanentError as exc:
            return self._finish_failed(job, exc)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _encode(self, job: Job, served: source.ServedVideo, info: probe.MediaInfo, keeper: LeaseKeeper,
                result_id: str, log_path: str) -> Encoded:
        """ffmpeg's output streams straight into GridFS (storage overlaps encoding), but for the formats
        whose header is written last, which go through a file in the job's work folder (encode.convert)."""
        options = job_options(job)
        expected = plan.expect(info, options)  # before anything is written: a bad trim or track fails the job
        allowance = output_limit.admit(job, self.worker_id, expected.bound_bytes, expected.bound_seconds)
        started = time.monotonic()
        metadata = {"job_id": job.id, "owner": job.owner}
        # The span keeps its old name for any format: benchmarks and the telemetry tests name it.
        with tracer.start_as_current_span("ffmpeg convert") as convert, \
                tracer.start_as_current_span("gridfs write mp3") as span, \
                files.open_writer(files.results(), result_id, jobs.result_name(job), metadata) as writer:
            convert.set_attributes({"vid2mp3.format": options.format, "vid2mp3.options": ",".join(options.used())})
            progress = ProgressReporter(job.id, self.worker_id, expected.seconds)
            lengths = [expected.seconds]  # trim_silence's cut makes it shorter
            try:
                written = encode.convert(served.url, info, writer, log_path, on_progress=progress, stop=keeper.stop,
                                         options=options, title=jobs.stem(job.filename), max_bytes=allowance.limit,
                                         expected=expected, on_length=lengths.append)
            except encode.OutputTooLarge:
                raise allowance.stopped() from None
            check_read(served)  # a short read must not pass for a finished result
            span.set_attribute("vid2mp3.bytes", written)
        observe(metrics.CONVERSION_DURATION, time.monotonic() - started)
        metrics.count_output(options)
        return Encoded(result_id, written, served.length, lengths[-1])

    def _finish_done(self, job: Job, keeper: LeaseKeeper, encoded: Encoded) -> Status:
        audio_seconds = encoded.audio_seconds
        if keeper.lost or not job_records.finish_job(job.id, self.worker_id, Status.DONE, mp3_id=encoded.result_id,
                                                 audio_seconds=audio_seconds, pending_mp3_id=None):
            files.delete_file(files.results(), encoded.result_id)
            raise JobLost()
        metrics.BYTES_IN.inc(encoded.video_bytes)
        metrics.BYTES_OUT.inc(encoded.result_bytes)
        metrics.AUDIO_SECONDS.inc(audio_seconds)
        metrics.JOBS.labels("success").inc()
        observe(metrics.JOB_E2E_LATENCY, max(time.time() - job.created, 0))
        log.info("job converted", extra={"job_id": job.id, "audio_seconds": audio_seconds,  # log keys as before
                                         "mp3_bytes": encoded.result_bytes})
        return Status.DONE

    def _finish_failed(self, job: Job, exc: PermanentError) -> Status:
        """The user's media is at fault: the job fails with the reason, nothing is retried."""
        telemetry.record_error(trace.get_current_span(), exc)
        if not job_records.finish_job(job.id, self.worker_id, Status.FAILED, reason=str(exc), pending_mp3_id=None):
            raise JobLost()
        metrics.JOBS.labels("failed").inc()
        log.info("job failed", extra={"job_id": job.id, "reason": str(exc)})
        return Status.FAILED

    def _announce(self, job_id: str, status: Status) -> None:
        """Tell notification the job ended (done or failed)."""
        messages.publish_finished(self.publisher, job_id, status)


@contextmanager
def served_video(job: Job, work_dir: str) -> Iterator[source.ServedVideo | source.LocalCopy]:
    """The job's video for the probe and ffmpeg to read while they work: on the loopback server
    (source.py), no copy on disk first; a small one copied into `work_dir`. The `gridfs read video`
    span covers the whole read."""
    videos = files.videos()
    stored = files.file_info(videos, job.video_id)
    if stored is None:
        raise PermanentError("the uploaded file is missing from storage")
    span = tracer.start_span("gridfs read video", attributes={"vid2mp3.bytes": stored["length"]})
    served = None
    try:
        if stored["length"] <= source.LOCAL_COPY_MAX_BYTES:
            served = source.LocalCopy(videos, stored, work_dir)
        else:
            served = VIDEO_SERVER.serve(videos, job.video_id, stored["length"])
        yield served
    except TransientError as exc:
        if served is None:  # the copy failed (a served video's read errors are in served.error)
            telemetry.record_error(span, exc)
        raise
    finally:
        if isinstance(served, source.ServedVideo):
            VIDEO_SERVER.forget(served)
        if served is not None:
            span.set_attributes({"vid2mp3.read_requests": served.requests, "vid2mp3.bytes_sent": served.bytes_sent})
            if served.error is not None:
                telemetry.record_error(span, served.error)
        span.end()


def probed(served: source.ServedVideo) -> probe.MediaInfo:
    """The video's media facts, checked convertible, in the `probe media` span."""
    with tracer.start_as_current_span("probe media") as span:
        info = probe.probe(served.url)
        span.set_attributes({"media.duration_s": info.duration or 0, "media.audio_codec": info.audio_codec or "",
                             "media.audio_streams": info.audio_streams, "media.video_streams": info.video_streams})
        probe.check_convertible(info)
    return info


def job_options(job: Job) -> Options:
    """The job's options; stored ones no longer valid (limits changed since the upload) fail the job."""
    try:
        return Options.from_dict(job.options)
    except OptionError as exc:
        raise PermanentError(f"invalid option {exc}") from None


def _still_held(job_id: str, worker_id: str) -> bool:
    try:
        return job_records.holds(job_id, worker_id)
    except Exception:  # MongoDB down: the failure stands as it is
        return True


def check_read(served: source.ServedVideo) -> None:
    if served.error is not None:
        raise TransientError(f"reading the video from storage failed: {type(served.error).__name__}")
