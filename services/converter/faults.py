"""Faults of the machine, not of the media: a probe or an ffmpeg run that failed this way is retried,
never a verdict on the upload. Each one is counted and logged."""
from __future__ import annotations

import logging
import signal

from services.common.messaging import TransientError

from . import metrics

log = logging.getLogger(__name__)

# What ffmpeg prints when the machine, not the media, failed it (I/O on the loopback
# source, memory, descriptors).
SYSTEM_FAULT_MARKERS = ("Connection refused", "Connection reset", "Connection timed out", "Broken pipe",
                        "Input/output error", "Cannot allocate memory", "Too many open files",
                        "No space left on device", "Resource temporarily unavailable", "Server returned 5")


def system_fault(tool: str, code: int, stderr: bytes | str) -> TransientError | None:
    """The transient error for a child that died of a signal (OOM killer, pod deletion) or hit a
    system fault; None when the exit is the media's doing."""
    if code < 0:
        try:
            cause = signal.Signals(-code).name
        except ValueError:
            cause = f"signal {-code}"
        detail = f"{tool} was killed by {cause}"
    else:
        marker = next((m for m in SYSTEM_FAULT_MARKERS if m in text(stderr)), None)
        if marker is None:
            return None
        cause, detail = "system_error", f"{tool} failed on a system fault ({marker})"
    return counted_fault(tool, cause, detail)


def counted_fault(tool: str, cause: str, detail: str) -> TransientError:
    metrics.CHILD_FAILURES.labels(tool, cause).inc()
    log.warning("media tool failed on a system fault, will retry", extra={"tool": tool, "cause": cause})
    return TransientError(detail)


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
