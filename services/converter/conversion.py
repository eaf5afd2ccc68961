"""The conversion of one job, top-down: claim it, probe the video (probe.py), plan its results
(plan.py: one per output, one per chapter of a split=chapters output), encode them in as few
ffmpeg runs as share a decode and store them (encode.py, command.py), finish and announce it.

Idempotent by job id: a job already done or failed is only re-announced; a job another
live worker holds is retried later; a crashed worker's files (every one derives from the one
attempt id the job records) are removed by the next attempt. The results become visible only
when the job turns `done`.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
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

from . import analysis, encode, importing, metrics, output_limit, plan, probe, source

log = logging.getLogger(__name__)
tracer = telemetry.tracer(__name__)
VIDEO_SERVER = source.VideoServer()  # one loopback server per process
SYSTEM_FAILURE = "internal error: the conversion could not be completed; please upload again"


class JobLost(Exception):
    """Another converter took the job over (this one's lease ran out): leave it to that one."""


@dataclass
class Encoded:
    """What a job's conversion stored: its results (jobs.RESULT_FIELDS) and what it measured."""

    attempt_id: str
    results: list[dict]
    video_bytes: int
    audio_seconds: float = 0.0  # of the first output (the job's `audio_seconds`)
    chapters: list[dict] = field(default_factory=list)  # the source's
    source_loudness: dict | None = None

    @property
    def result_bytes(self) -> int:
        return sum(result["size"] for result in self.results)


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
            job_id = VideoMessage.parse(delivery).job_id
            job_records.release_job(job_id, self.worker_id) or job_records.release_fetch(job_id, self.worker_id)
        except Exception:
            pass  # the lease runs out by itself

    def on_give_up(self, delivery: Delivery, reason: str) -> None:
        """Dead-lettered: the job ends failed (a system reason) and its owner hears about it."""
        metrics.JOBS.labels("dead_lettered").inc()
        try:
            job_id = VideoMessage.parse(delivery).job_id
        except PermanentError:
            return
        source_trouble = importing.give_up_reason(reason)  # a URL import's source kept failing: say how
        if source_trouble is not None:
            fields = {"reason": source_trouble, "fetch": None}
        else:
            fields = {"reason": SYSTEM_FAILURE, "system_failure": True}
        if job_records.finish_job(job_id, None, Status.FAILED, **fields):
            self._announce(job_id, Status.FAILED)

    # ---- the job
    def _handle_job(self, job_id: str) -> None:
        # Claim first: the usual message is for a queued job, and the claim is the one round trip it
        # needs; only a message that cannot claim its job reads the job to learn why.
        attempt_id = new_id()  # recorded by the claim: the job's files before `done` all derive from it
        job = job_records.claim_job(job_id, self.worker_id, self.lease_seconds, result_id=attempt_id)
        if job is None and self._not_claimed(job_id) == Status.QUEUED:  # a URL import, fetched: convert it now
            job = job_records.claim_job(job_id, self.worker_id, self.lease_seconds, result_id=attempt_id)
            if job is None:
                self._not_claimed(job_id)
        if job is None:
            return
        try:
            with self._lease(job) as keeper:
                status = self._convert(job, keeper, attempt_id)
        except JobLost:
            log.warning("lost the job to another converter", extra={"job_id": job_id})
            return
        self._announce(job_id, status)

    def _not_claimed(self, job_id: str) -> Status | None:
        """The job could not be taken: a URL import to fetch first (QUEUED once fetched), deleted, unknown,
        finished already, or held by another worker."""
        job = job_records.get_job(job_id)
        if job is None:
            if tombstones.was_deleted(job_id):  # by its owner, since its message was published
                log.info("job deleted before its conversion, dropping its message", extra={"job_id": job_id})
                return None
            raise PermanentError(f"unknown job {job_id}")
        if job.status == Status.FETCHING:
            outcome = importing.run(job, self.worker_id, self.lease_seconds)
            if outcome == Status.FAILED:
                self._announce(job_id, Status.FAILED)
            return outcome
        if job.status in jobs.FINAL:
            # A redelivery or a duplicate: the work is done; make sure notification heard of it.
            # (A cancelled job was announced by whoever cancelled it.)
            log.info("job already finished", extra={"job_id": job_id, "status": job.status})
            if job.status in jobs.CONVERTER_OUTCOMES:
                self._announce(job_id, job.status)
            return None
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

    def _convert(self, job: Job, keeper: LeaseKeeper, attempt_id: str) -> Status:
        """Probe, encode into the files of `attempt_id` and finish; a PermanentError (the media's fault) ends the
        job failed. `job` is as it was before the claim: its `pending_mp3_id` is a dead attempt's, whose files go."""
        work_dir = workdirs.make()
        try:
            if job.pending_mp3_id:  # left by a worker that died mid-job: every file it wrote
                files.delete_attempt(files.results(), job.pending_mp3_id)
            with served_video(job, work_dir) as served:
                try:
                    info = probed(served)
                    encoded = self._encode(job, served, info, keeper, attempt_id, work_dir)
                except PermanentError:
                    check_read(served)  # the probe or ffmpeg failing on a storage error is not the media's fault
                    raise
            return self._finish_done(job, keeper, encoded)
        except PermanentError as exc:
            return self._finish_failed(job, exc)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _encode(self, job: Job, served: source.ServedVideo, info: probe.MediaInfo, keeper: LeaseKeeper,
                attempt_id: str, work_dir: str) -> Encoded:
        """Every output of the job (plan.targets_of: one per output, one per chapter of a split), in one
        ffmpeg run per group of outputs that share their decode (plan.runs_of), then stored one by one.
        A job of one streamable output streams into GridFS while ffmpeg encodes (storage overlaps
        encoding; encode.convert_targets keeps a copy for analysis); the others are written to the work
        folder first. Whatever fails leaves none of this attempt's files behind."""
        outputs = job_outputs(job)
        targets = plan.targets_of(info, outputs, jobs.stem(job.filename))  # a bad trim or track fails the job
        bound = sum(target.bound_bytes for target in targets)
        allowance = output_limit.admit(job, self.worker_id, bound, sum(target.bound_seconds for target in targets))
        for target in targets:  # each its share of the allowance: together never past it
            target.max_bytes = allowance.limit * target.bound_bytes // max(bound, 1)
        names = result_names(job, targets)
        streamed = plan.streamable(targets)
        if not streamed:
            for n, target in enumerate(targets):
                target.path = os.path.join(work_dir, f"result-{n}.{target.options.spec.extension}")
        started = time.monotonic()
        try:
            made = self._run_all(job, served, info, keeper, attempt_id, work_dir, targets, names, streamed)
        except encode.OutputTooLarge:
            files.delete_attempt(files.results(), attempt_id)
            raise allowance.stopped() from None
        except BaseException:
            files.delete_attempt(files.results(), attempt_id)
            raise
        observe(metrics.CONVERSION_DURATION, time.monotonic() - started)
        metrics.count_results(targets)
        whole = next((t.seconds for t in targets if t.chapter is None), plan.output_seconds(info, outputs[0]))
        return Encoded(attempt_id, made.results, served.length, whole, info.chapters, made.source_loudness)

    def _run_all(self, job: Job, served, info: probe.MediaInfo, keeper: LeaseKeeper, attempt_id: str,
                 work_dir: str, targets: list[plan.Target], names: list[str], streamed: bool) -> "Made":
        runs = plan.runs_of(targets)
        lengths = [plan.output_seconds(info, run[0].options) for run in runs]
        progress = ProgressReporter(job.id, self.worker_id, sum(lengths))
        metadata = {"job_id": job.id, "owner": job.owner}
        made = Made([], None)
        first = targets[0].options
        # The span keeps its old name for any format: benchmarks and the telemetry tests name it.
        with tracer.start_as_current_span("ffmpeg convert") as convert:
            convert.set_attributes({"vid2mp3.format": first.format, "vid2mp3.options": ",".join(first.used()),
                                    "vid2mp3.outputs": len(targets), "vid2mp3.runs": len(runs)})
            analysis.attach_meters(served.url, info, targets)
            # results measured inside this run; the others (stream copies) get an "analyse result" span each
            convert.set_attribute("vid2mp3.metered", sum(target.meter is not None for target in targets))
            if streamed:  # one result, stored while ffmpeg encodes it
                result_id = files.attempt_file_id(attempt_id, "result", 0)
                with tracer.start_as_current_span("gridfs write mp3") as span, \
                        files.open_writer(files.results(), result_id, names[0], metadata) as writer:
                    done = encode.convert_targets(served.url, info, targets, work_dir, lengths[0], progress,
                                                  keeper.stop, sink=writer)
                    check_read(served)  # a short read must not pass for a finished result
                    span.set_attributes({"vid2mp3.bytes": done.sizes[0], "vid2mp3.output": 0})
                    made.source_loudness = source_loudness(done.loudness)
                    _shortened(targets, done.seconds)
                    made.results.append(self._stored_result(attempt_id, 0, targets[0], names[0], done.sizes[0],
                                                            encode.tee_path(work_dir, targets[0]), writer))
                return made
            sizes: dict[int, int] = {}
            offset = 0.0
            for run, length in zip(runs, lengths, strict=True):
                done = encode.convert_targets(served.url, info, run, work_dir, length,
                                              lambda s, base=offset: progress(base + s), keeper.stop)
                offset += length
                sizes.update({id(target): size for target, size in zip(run, done.sizes, strict=True)})
                made.source_loudness = made.source_loudness or source_loudness(done.loudness)
                _shortened(run, done.seconds)
            check_read(served)
        for n, (target, name) in enumerate(zip(targets, names, strict=True)):
            result_id = files.attempt_file_id(attempt_id, "result", n)
            with tracer.start_as_current_span("gridfs write mp3") as span, \
                    files.open_writer(files.results(), result_id, name, metadata) as writer, \
                    open(target.path, "rb") as result:
                span.set_attributes({"vid2mp3.bytes": sizes[id(target)], "vid2mp3.output": n,
                                     "vid2mp3.format": target.options.format})
                while block := result.read(encode.READ_BLOCK):
                    writer.write(block)
                made.results.append(self._stored_result(attempt_id, n, target, name, sizes[id(target)], target.path,
                                                        writer))
        return made

    def _stored_result(self, attempt_id: str, n: int, target: plan.Target, name: str, size: int, path: str,
                       writer: files.FileWriter) -> dict:
        """The job's entry of a result being stored by `writer`, and its analysis, measured while ffmpeg encoded
        it or from its file at `path` (a stream copy): the waveform is stored by the result's own close."""
        loudness, peaks = target.meter.result() if target.meter is not None else _analyse(path)
        waveform_id = None
        if peaks is not None:
            waveform_id = files.attempt_file_id(attempt_id, "waveform", n)
            writer.attach(waveform_id, os.path.splitext(name)[0] + ".json", dict(writer.metadata, kind="waveform"),
                          peaks)
        result = {"mp3_id": writer.file_id, "output": target.output, "name": name,
                  "media_type": target.options.spec.media_type, "size": size, "options": target.options.to_dict(),
                  "audio_seconds": round(target.seconds, 3), "loudness": loudness, "waveform_id": waveform_id}
        if target.chapter is not None:
            result["chapter"] = target.chapter
        return result

    def _finish_done(self, job: Job, keeper: LeaseKeeper, encoded: Encoded) -> Status:
        audio_seconds = encoded.audio_seconds
        if keeper.lost or not job_records.finish_job(
                job.id, self.worker_id, Status.DONE, mp3_id=encoded.results[0]["mp3_id"], audio_seconds=audio_seconds,
                results=encoded.results, chapters=encoded.chapters, source_loudness=encoded.source_loudness,
                pending_mp3_id=None):
            files.delete_attempt(files.results(), encoded.attempt_id)
            raise JobLost()
        metrics.BYTES_IN.inc(encoded.video_bytes)
        metrics.BYTES_OUT.inc(encoded.result_bytes)
        metrics.AUDIO_SECONDS.inc(sum(result["audio_seconds"] for result in encoded.results))
        metrics.JOBS.labels("success").inc()
        observe(metrics.JOB_E2E_LATENCY, max(time.time() - job.created, 0))
        log.info("job converted", extra={"job_id": job.id, "audio_seconds": audio_seconds,  # log keys as before
                                         "mp3_bytes": encoded.result_bytes, "results": len(encoded.results)})
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


@dataclass
class Made:
    results: list[dict]
    source_loudness: dict | None


def _analyse(result_path: str) -> tuple[dict | None, bytes | None]:
    """The result's loudness (jobs.LOUDNESS_FIELDS) and its peaks file (audiowaveform JSON), measured on
    the result's file in the job's work folder, in one decode of it (analysis.analyse)."""
    work_dir = os.path.dirname(result_path)
    with tracer.start_as_current_span("analyse result"):
        return analysis.analyse(result_path, work_dir)


def _shortened(targets: list[plan.Target], seconds: float | None) -> None:
    """trim_silence made the run shorter than planned: its whole-file results hold `seconds` of audio."""
    if seconds is None:
        return
    for target in targets:
        if target.chapter is None:
            target.seconds = min(target.seconds, seconds)


def source_loudness(measured: dict | None) -> dict | None:
    """Normalisation's pass-1 measurement of the source as jobs.LOUDNESS_FIELDS (None: not measured)."""
    if not measured:
        return None
    try:
        return {"integrated_lufs": float(measured["input_i"]), "range_lu": float(measured["input_lra"]),
                "true_peak_dbtp": float(measured["input_tp"])}
    except (KeyError, ValueError):
        return None


def result_names(job: Job, targets: list[plan.Target]) -> list[str]:
    """Each result's download name: the upload's stem and the format's extension ("talk.mp3"), a split
    result's number and chapter title ("talk - 01 - Intro.mp3"); made unique ("talk (2).mp3")."""
    stem, names, taken = jobs.stem(job.filename), [], set()
    for target in targets:
        base = stem
        if target.chapter is not None:
            width = max(2, len(str(target.chapter["count"])))
            base = f"{stem} - {target.chapter['index']:0{width}d} - {_file_safe(target.chapter['title'])}".rstrip(" -")
        extension, name, n = target.options.spec.extension, None, 1
        while name is None or name.lower() in taken:
            name = f"{base}.{extension}" if n == 1 else f"{base} ({n}).{extension}"
            n += 1
        taken.add(name.lower())
        names.append(name)
    return names


def _file_safe(title: str) -> str:
    """A chapter title as part of a file name: no path separators or characters file systems refuse."""
    kept = "".join(" " if ch in '/\\:*?"<>|' or not ch.isprintable() else ch for ch in title)
    return " ".join(kept.split())[:100]


def job_outputs(job: Job) -> list[Options]:
    """Every output the job asks for, in order (no `outputs`: the one of its `options`)."""
    try:
        return [Options.from_dict(stored) for stored in job.outputs] or [Options.from_dict(job.options)]
    except OptionError as exc:
        raise PermanentError(f"invalid option {exc}") from None


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
