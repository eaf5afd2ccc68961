"""How many bytes a job's result may take, decided before ffmpeg starts and held while it runs.

Before: the predicted upper bound (plan.expect) is compared with what the owner's storage quota
has left (services/common/quota_usage.py, the gateway's rules: admins are exempt) and with
MAX_OUTPUT_BYTES; a result that would pass either is refused, the job fails with the reason.
While ffmpeg runs: the output may grow to GUARD_SLACK × the prediction, never past the smaller of
those two limits; beyond, ffmpeg is stopped and the job fails (encode.OutputTooLarge). That limit is
reserved in the owner's quota under the same per-user lease the gateway admits uploads with, so
concurrent conversions and uploads of one user cannot together pass the quota.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry import trace

from services.common import config, quota_usage
from services.common.jobs import Job
from services.common.messaging import PermanentError, TransientError
from services.common.storage import job_records

from . import metrics
from .output_size import megabytes

log = logging.getLogger(__name__)
# The running guard's room over the prediction: durations a demuxer estimates from a bitrate (an MP3
# without a Xing header, raw AAC) can be short by tens of percent; a header that lies by hours is
# still stopped after a few megabytes.
GUARD_SLACK = 2
QUOTA, MAXIMUM, BOUND = "storage_quota", "max_output_bytes", "bound"
SHRINK = "ask for a shorter part (start and end), a lower bitrate or a compressed format"


@dataclass(frozen=True)
class Allowance:
    limit: int  # bytes the output may take; ffmpeg is stopped past them
    predicted: int  # the upper bound predicted from the probed duration
    seconds: float  # the probed seconds the prediction counts
    cause: str  # what sets `limit`: QUOTA, MAXIMUM or BOUND (GUARD_SLACK × predicted)

    def stopped(self) -> PermanentError:
        """The failure of a job whose output grew past `limit` (its file holds more than its header says)."""
        _count("stopped", self.cause, self.limit, self.predicted, self.seconds)
        lied = f"the file decodes to more audio than the {self.seconds:.0f} s its header gives"
        where = {QUOTA: f"the {megabytes(self.limit)} left in your storage quota",
                 MAXIMUM: f"{megabytes(self.limit)}, the most one result may take (MAX_OUTPUT_BYTES)",
                 BOUND: megabytes(self.limit)}[self.cause]
        return PermanentError(f"{lied}: the result grew past {where}, so the conversion was stopped")


def admit(job: Job, worker_id: str, predicted: int, seconds: float) -> Allowance:
    """The job's allowance, reserved in its owner's quota; PermanentError when `predicted` passes a limit."""
    caps = {MAXIMUM: config.env_int("MAX_OUTPUT_BYTES")}
    if job.quota_exempt:  # an admin's upload: no quota, nothing to reserve
        return _allowance(caps, predicted, seconds)
    try:
        with quota_usage.leased(job.owner) as account:
            caps[QUOTA] = max(quota_usage.limits().stored_bytes - quota_usage.usage(
                job.owner, excluding_job=job.id, account=account).stored_bytes, 0)
            allowance = _allowance(caps, predicted, seconds)
            if not job_records.reserve_output(job.id, worker_id, allowance.limit):
                raise TransientError("the job is no longer this converter's")
    except quota_usage.QuotaBusy:
        raise TransientError("the owner's quota is being checked by another process; retrying") from None
    return allowance


def _allowance(caps: dict[str, int], predicted: int, seconds: float) -> Allowance:
    cause, cap = min(caps.items(), key=lambda item: item[1])
    trace.get_current_span().set_attributes({"vid2mp3.output.predicted_bytes": predicted,
                                             "vid2mp3.output.limit_bytes": min(cap, predicted * GUARD_SLACK)})
    if predicted > cap:
        _count("refused", cause, cap, predicted, seconds)
        where = {QUOTA: f"the {megabytes(cap)} left in your storage quota; delete jobs you no longer need, or {SHRINK}",
                 MAXIMUM: f"the {megabytes(cap)} one result may take (MAX_OUTPUT_BYTES); {SHRINK}"}[cause]
        raise PermanentError(f"the result would be up to about {megabytes(predicted)}, more than {where}")
    if predicted * GUARD_SLACK < cap:
        return Allowance(predicted * GUARD_SLACK, predicted, seconds, BOUND)
    return Allowance(cap, predicted, seconds, cause)


def _count(outcome: str, cause: str, limit: int, predicted: int, seconds: float) -> None:
    metrics.OUTPUT_LIMITED.labels(outcome, cause).inc()
    trace.get_current_span().set_attribute("vid2mp3.output.limited", f"{outcome}:{cause}")
    log.info("result size limit", extra={"outcome": outcome, "limit": cause, "limit_bytes": limit,
                                         "predicted_bytes": predicted, "probed_seconds": round(seconds, 3)})
