"""The converter's own CPU around one ffmpeg run, with no stack: its Python's CPU seconds (the threads that
read ffmpeg's outputs, the waveform's numpy, the result's writer) against the CPU of the ffmpeg child it
runs, in the same runs, and how many blocks each output was read in (issue 24: one read per encoded frame
once cost more CPU than the rest of a short job's Python).

    .venv/bin/python loadtest/conversion_overhead.py FILE [FILE ...] [--runs 5]

Each run is `encode.convert_targets` of a plain MP3 job of FILE, streamed into a sink in memory and
measured as a job measures it (analysis.Meter), then the meter's result.
"""
from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import tempfile
import threading
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from services.common.options import Options  # noqa: E402
from services.converter import analysis, encode, plan, probe  # noqa: E402


class CountingSink(io.BytesIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, data) -> int:
        self.writes += 1
        return super().write(data)


def one_run(source: str) -> dict:
    """Python and ffmpeg CPU seconds of one conversion of `source`, and the reads of each output."""
    info = probe.probe(source)
    targets = plan.targets_of(info, [Options()], "bench")
    targets[0].path = "pipe:1"
    analysis.attach_meters(source, info, targets)
    meter, sink, blocks = targets[0].meter, CountingSink(), {"pcm": 0}
    counted = meter.peaks.write

    def count(block: bytes) -> int:
        blocks["pcm"] += 1
        return counted(block)

    meter.peaks.write = count
    own, child = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as work_dir:
        encode.convert_targets(source, info, targets, work_dir, info.duration or 0, None, threading.Event(), sink=sink)
        meter.result()
    own_after, child_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"python_cpu_s": _cpu(own_after) - _cpu(own), "ffmpeg_cpu_s": _cpu(child_after) - _cpu(child),
            "result_reads": sink.writes, "pcm_reads": blocks["pcm"]}


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    print("| file | converter Python CPU | ffmpeg CPU | ratio | result read in | PCM read in |")
    print("|---|---|---|---|---|---|")
    for source in args.files:
        one_run(source)  # warm: imports, the page cache
        runs = [one_run(source) for _ in range(args.runs)]
        python = statistics.median(run["python_cpu_s"] for run in runs)
        ffmpeg = statistics.median(run["ffmpeg_cpu_s"] for run in runs)
        print(f"| {Path(source).name} | {python * 1000:.1f} ms | {ffmpeg * 1000:.0f} ms | {python / ffmpeg:.3f} | "
              f"{runs[-1]['result_reads']} blocks | {runs[-1]['pcm_reads']} blocks |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
