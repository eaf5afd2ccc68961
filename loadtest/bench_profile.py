"""The per-job profile of the converter: where the time of one job goes, from its spans.

For every job of a figure, the converter's spans of its trace (own spans plus the pymongo, publish and
HTTP spans of the instrumentation) are summed by name; the profile is the median per name over the jobs,
plus "unspanned": the `process` span's time no direct child covers (Python between the calls). Child
spans that overlap (the GridFS read under the probe and ffmpeg) are listed but not subtracted twice.

    .venv/bin/python loadtest/bench.py --only b --converters 1   # figure b carries the profile
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict

from devkit import ffmpeg_baseline

SERVICE = "converter"


def _merged_seconds(intervals: list[tuple[int, int]]) -> float:
    """Seconds covered by the union of [start, end) intervals."""
    covered, end_so_far = 0, None
    for start, end in sorted(intervals):
        if end_so_far is None or start > end_so_far:
            covered += end - start
            end_so_far = end
        elif end > end_so_far:
            covered += end - end_so_far
            end_so_far = end
    return covered / 1e9


def one_job(spans: list[dict]) -> dict[str, float]:
    """Seconds per span name for one job's converter spans (each name summed), with `process` and `unspanned`."""
    mine = [s for s in spans if s["service"] == SERVICE]
    process = next((s for s in mine if s["name"].startswith("process ")), None)
    if process is None:
        return {}
    found: dict[str, float] = defaultdict(float)
    for span in mine:
        name = "process" if span is process else span["name"]
        found[name] += (span["end_ns"] - span["start_ns"]) / 1e9
    children = [(s["start_ns"], s["end_ns"]) for s in mine if s["parent_id"] == process["span_id"]]
    found["unspanned"] = found["process"] - _merged_seconds(children)
    return dict(found)


def profile(otlp, trace_ids: list[str | None], wait: float = 3) -> dict:
    """Median seconds per span name over the jobs (a name missing in a job counts 0 there), in ms."""
    time.sleep(wait)  # batch span processors flush every 0.5 s
    jobs = [p for p in (one_job(otlp.trace(t)) for t in trace_ids if t) if p]
    names = {name for job in jobs for name in job}
    medians = {name: round(statistics.median(job.get(name, 0.0) for job in jobs) * 1000, 1) for name in names}
    return {"jobs": len(jobs), "median_ms": dict(sorted(medians.items(), key=lambda item: -item[1]))}


def figure_single(stack, otlp, files: dict, runs: int = 5, key: str = "clip") -> dict:
    """One short clip (`files[key]`) at a time, upload to done (job times: created → done) against ffmpeg
    alone on the same file run just before it (pairs: the shared machine's load changes within seconds);
    the median of the pairs' ratios, with the per-job profile of those jobs."""
    import bench_figures as figures  # loadtest/bench_figures.py

    clip = files[key]
    user = figures.User(stack.gateway)
    totals, alone, analysed, trace_ids = [], [], [], []
    for copy in figures.distinct_copies(clip, runs):
        alone.append(ffmpeg_baseline.seconds(clip, runs=1)["median_s"])
        analysed.append(ffmpeg_baseline.seconds(clip, runs=1, analysed=True)["median_s"])
        job_id, _ = user.upload(copy)
        user.wait(job_id, timeout=300, interval=0.25)  # the figure is the job's own times; fast polls would load it
        doc = stack.db.jobs.find_one({"_id": job_id})
        totals.append(doc["times"]["done"] - doc["created"])
        trace_ids.append(figures.trace_id_of(doc))
    result = {"clip": clip.name, "runs": runs, "pipeline_runs_s": totals, "ffmpeg_runs_s": alone,
              "pipeline_median_s": statistics.median(totals), "ffmpeg_median_s": statistics.median(alone),
              "ratio": statistics.median(t / a for t, a in zip(totals, alone, strict=True)),
              "ffmpeg_analysed_runs_s": analysed, "ffmpeg_analysed_median_s": statistics.median(analysed),
              "analysed_ratio": statistics.median(t / a for t, a in zip(totals, analysed, strict=True)),
              "profile": profile(otlp, trace_ids)}
    figures.log(f"s: {result}")
    return result


def gaps(docs: list[dict]) -> dict:
    """Between jobs of one converter: median seconds from a job's `done` to the next job's claim (the ack,
    the next delivery, the consumer's bookkeeping), and the first claim after the first upload."""
    ordered = sorted(docs, key=lambda d: d["times"]["converting"])
    between = [b["times"]["converting"] - a["times"]["done"] for a, b in zip(ordered, ordered[1:], strict=False)]
    return {"between_jobs_median_s": statistics.median(between) if between else None,
            "first_claim_after_upload_s": ordered[0]["times"]["converting"] - min(d["created"] for d in docs)}
