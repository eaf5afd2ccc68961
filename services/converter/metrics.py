"""The converter's own metrics (jobs by outcome, their timings and volumes, killed children).

Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter, Gauge, Histogram

from services.common.options import FORMATS, Options, fields_named

CONVERSION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)
E2E_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


JOBS = Counter("converter_jobs", "Conversion attempts by outcome", ["result"])
CONVERSION_DURATION = Histogram("converter_conversion_duration_seconds", "Time ffmpeg spent on one job",
                                buckets=CONVERSION_BUCKETS)
QUEUE_WAIT = Histogram("converter_queue_wait_seconds", "Time from publish to pick-up by a converter",
                       buckets=QUEUE_WAIT_BUCKETS)
JOB_E2E_LATENCY = Histogram("converter_job_e2e_latency_seconds", "Time from upload accepted to result ready",
                            buckets=E2E_BUCKETS)
AUDIO_SECONDS = Counter("converter_audio_seconds", "Seconds of audio produced")
BYTES_IN = Counter("converter_bytes_in", "Bytes of video read by the converter")
BYTES_OUT = Counter("converter_bytes_out", "Bytes of results written by the converter")
CHILD_FAILURES = Counter("converter_child_failures",
                         "ffmpeg runs (a child) and probes (in-process) ended by a system fault and retried",
                         ["tool", "cause"])
JOBS_IN_PROGRESS = Gauge("converter_jobs_in_progress", "Jobs being converted right now")
OUTPUTS = Counter("converter_outputs", "Finished conversions by output format", ["format"])
RESULTS_PER_JOB = Histogram("converter_results_per_job", "Result files one converted job made (its outputs; "
                            "split=chapters: one per chapter)", buckets=(1, 2, 3, 5, 10, 20, 50, 100, 256))
OPTION_USES = Counter("converter_option_uses", "Finished conversions by option given (format: when not mp3)",
                      ["option"])
OUTPUT_LIMITED = Counter("converter_output_limited",
                         "Jobs failed for their result's size: refused before ffmpeg (predicted past a limit) or "
                         "stopped while it ran (grew past it), by the limit", ["outcome", "limit"])
for _outcome, _limits in (("refused", ("storage_quota", "max_output_bytes")),
                          ("stopped", ("storage_quota", "max_output_bytes", "bound"))):
    for _limit in _limits:
        OUTPUT_LIMITED.labels(_outcome, _limit)
IMPORTS = Counter("converter_imports", "URL import fetch attempts by result (fetched, failed, retried, cancelled)",
                  ["result"])
IMPORT_BYTES = Counter("converter_import_bytes", "Bytes fetched by URL imports that were stored")
IMPORT_DURATION = Histogram("converter_import_duration_seconds", "Time one URL import fetch took (fetched or failed)",
                            buckets=CONVERSION_BUCKETS)
for _result in ("fetched", "failed", "retried", "cancelled"):
    IMPORTS.labels(_result)
for _name in FORMATS:  # every series exists from the start (labels are bounded: the formats, the option names)
    OUTPUTS.labels(_name)
for _name in fields_named():
    OPTION_USES.labels(_name)


def count_output(options: Options) -> None:
    OUTPUTS.labels(options.format).inc()
    for name in options.used():
        OPTION_USES.labels(name).inc()


def count_results(targets) -> None:
    """A converted job's results: each counted by format and options (as one output), and how many."""
    for target in targets:
        count_output(target.options)
    RESULTS_PER_JOB.observe(len(targets))
