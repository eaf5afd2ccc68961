"""Figure `cpu` (issue 24, item 3): the CPU seconds one job costs the whole stack, against the CPU seconds
of ffmpeg alone on the same file. The figure that sets the bill: the capacity model (loadtest/capacity_model.py,
README "Sizing") takes its per-job cost from it.

Every process of the isolated stack is read from /proc (user + system, the process, its threads, its
live descendants and the children that ended: ffmpeg): gateway and auth (gunicorn master and worker),
converter and its ffmpeg children, notification, the MongoDB stand-in and the SMTP stand-in. The broker
is the machine's shared RabbitMQ, not the stack's: it is not counted. One job is from the first byte of
its upload until its email has been sent, with the client polling its status every `poll_s` seconds as a
client does. What the idle stack burns over the same time (heartbeats, timers: measured just before) is
subtracted.

    .venv/bin/python loadtest/bench.py --only cpu
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import bench_figures as figures  # loadtest/bench_figures.py
from devkit import ffmpeg_baseline

PROCESSES = ("gateway", "auth", "converter", "notification", "mongodb", "smtp")
TARGETS = {"clip": 1.3, "long": 1.15}
IDLE_WINDOW_S = 2.0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its ended children and its live descendants (and theirs)."""
    total = figures.cpu_seconds(pid)
    for child in _descendants(pid):
        try:
            total += figures.cpu_seconds(child)
        except OSError:  # ended between the listing and the reading: its parent's children count has it
            pass
    return total


def stack_cpu(stack) -> dict[str, float]:
    return {name: tree_cpu_seconds(stack.pid(name)) for name in PROCESSES}


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def idle_rate(stack) -> dict[str, float]:
    """CPU seconds per second each process uses while no job runs."""
    before = stack_cpu(stack)
    time.sleep(IDLE_WINDOW_S)
    return {name: seconds / IDLE_WINDOW_S for name, seconds in _spent(before, stack_cpu(stack)).items()}


def _emailed(stack, job_id: str, timeout: float = 120) -> None:
    """Wait until notification recorded the job's email as sent (its ledger), so that its work is counted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.db.notifications.find_one({"job_id": job_id, "state": "sent"}, {"_id": 1}):
            return
        time.sleep(0.1)
    raise RuntimeError(f"no email recorded for job {job_id} after {timeout} s")


def one_job(stack, user, path: Path, poll_s: float) -> dict:
    idle = idle_rate(stack)
    before, started = stack_cpu(stack), time.monotonic()
    job_id, upload_s = user.upload(path)
    accepted = stack_cpu(stack)
    user.wait(job_id, interval=poll_s)
    _emailed(stack, job_id)
    after, window = stack_cpu(stack), time.monotonic() - started
    spent = {name: max(seconds - idle[name] * window, 0.0) for name, seconds in _spent(before, after).items()}
    return {"job_id": job_id, "window_s": window, "upload_s": upload_s, "per_process_s": spent,
            "upload_phase_s": sum(_spent(before, accepted).values()), "total_s": sum(spent.values()),
            "idle_s_per_s": sum(idle.values())}


def figure_cpu(stack, files: dict, clip_jobs: int = 5, long_jobs: int = 1) -> dict:
    """Per file: the median job's stack CPU against ffmpeg alone's CPU on the same file."""
    user = figures.User(stack.gateway)
    result = {}
    for key, jobs, poll_s in (("clip", clip_jobs, 0.25), ("long", long_jobs, 1.0)):
        source = files[key]
        figures.log(f"cpu: ffmpeg alone on {source.name} ...")
        alone = ffmpeg_baseline.seconds(source, runs=3)
        analysed = ffmpeg_baseline.seconds(source, runs=3, analysed=True)
        runs = [one_job(stack, user, copy, poll_s) for copy in figures.distinct_copies(source, jobs)]
        median = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]
        result[key] = {"file": source.name, "jobs": jobs, "poll_s": poll_s, "ffmpeg_cpu_s": alone["cpu_median_s"],
                       "ffmpeg_cpu_runs_s": alone["cpu_runs_s"], "runs": runs,
                       "stack_cpu_s": median["total_s"], "per_process_s": median["per_process_s"],
                       "ratio": median["total_s"] / alone["cpu_median_s"],
                       "ratios": [r["total_s"] / alone["cpu_median_s"] for r in runs],
                       "ratio_median_of_runs": statistics.median(r["total_s"] for r in runs) / alone["cpu_median_s"],
                       "ffmpeg_analysed_cpu_s": analysed["cpu_median_s"],
                       "analysed_ratio": median["total_s"] / analysed["cpu_median_s"]}
        figures.log(f"cpu: {key}: {result[key]['ratio']:.2f}× ({median['total_s']:.2f} s against "
                    f"{alone['cpu_median_s']:.2f} s)")
    return result


def rows(cpu: dict) -> list[str]:
    """The figure's rows of the summary table in BENCHMARKS.md."""
    from bench_report import analysed_row, verdict

    lines = []
    for key, label in (("clip", "20 s clip"), ("long", "10-minute file")):
        c = cpu.get(key)
        if not c:
            continue
        lines.append(f"| cpu. CPU seconds of the whole stack for one job, {label} ({c['file']}), upload → email sent "
                     f"(median of {c['jobs']}) | {c['stack_cpu_s']:.2f} s{_after_upload(c)} | "
                     f"ffmpeg alone {c['ffmpeg_cpu_s']:.2f} s CPU | "
                     f"{c['ratio']:.2f}× | ≤ {TARGETS[key]}× | {verdict(c['ratio'], TARGETS[key])} |")
        if "analysed_ratio" in c:
            lines.append(analysed_row(f"cpu. the same, {label}", f"{c['stack_cpu_s']:.2f} s",
                                      f"{c['ffmpeg_analysed_cpu_s']:.2f} s CPU", c["analysed_ratio"], TARGETS[key]))
    return lines


def _after_upload(c: dict) -> str:
    """The median job's share after the upload was accepted (the storage stand-in's writes of the upload left
    out: they are the stand-in's, SQLite's, more than production MongoDB's), against ffmpeg alone."""
    median = next((r for r in c["runs"] if r["total_s"] == c["stack_cpu_s"]), None)
    if median is None:
        return ""
    after = median["total_s"] - median["upload_phase_s"]
    return f" (after the upload: {after:.2f} s, {after / c['ffmpeg_cpu_s']:.2f}×)"


def detail(cpu: dict) -> list[str]:
    """Where the CPU of one job goes, per process."""
    lines = ["", "## CPU of one job, per process (figure cpu)", "",
             "CPU seconds (user + system) from the first byte of the upload until the email was sent, the idle "
             "stack's own use over the same time subtracted; the client polls its status as a client does. "
             "The broker (the machine's RabbitMQ) is not counted.", "",
             "| file | " + " | ".join(PROCESSES) + " | whole stack | of which the upload | ffmpeg alone | ratio |",
             "|---" * (len(PROCESSES) + 5) + "|"]
    for key in ("clip", "long"):
        c = cpu.get(key)
        if not c:
            continue
        for run in c["runs"]:
            lines.append(f"| {c['file']} | " + " | ".join(f"{run['per_process_s'][n]:.3f}" for n in PROCESSES)
                         + f" | {run['total_s']:.3f} | {run['upload_phase_s']:.3f} | {c['ffmpeg_cpu_s']:.3f} | "
                         f"{run['total_s'] / c['ffmpeg_cpu_s']:.2f}× |")
    return lines
