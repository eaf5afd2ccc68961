"""vid2mp3 benchmarks, run on demand (not in CI): writes loadtest/BENCHMARKS.md and loadtest/benchmarks.json.

    .venv/bin/python loadtest/bench.py                # everything (~20 min on 2 cores)
    .venv/bin/python loadtest/bench.py --only a,b     # some figures: a overhead, b throughput, c memory,
                                                      # d API capacity, e moviepy reference, api: GET
                                                      # /jobs/<id> vs /healthz and login vs argon2,
                                                      # s single short job + per-job profile,
                                                      # cpu: the whole stack's CPU per job,
                                                      # f: each feature's cost against a plain MP3 job
    .venv/bin/python loadtest/bench.py --only a,b,s,cpu,api --keep   # the rest carried over from benchmarks.json
    .venv/bin/python loadtest/bench.py --long-seconds 120 --big-mb 300 --clips 20
    .venv/bin/python loadtest/bench.py --only b --clips 2 --converters 1 --clip-seconds 2 \\
        --out /tmp/BENCHMARKS.md --json /tmp/benchmarks.json           # a quick check that it works

It starts its own isolated local stack (tests/devkit/stack.py: own VID2MP3_HOME under /tmp, free ports,
unique queue and database names, traces exported to an in-process OTLP receiver so the time of each
stage can be read from the spans), measures (loadtest/bench_figures.py), stops and removes the stack,
and writes the report (loadtest/bench_report.py). Every figure is compared with a baseline measured
in the same run on the same files (ffmpeg alone with the converter's encoder settings).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import bench_api  # loadtest/bench_api.py
import bench_cpu  # loadtest/bench_cpu.py
import bench_features  # loadtest/bench_features.py
import bench_figures as figures  # loadtest/bench_figures.py
import bench_profile  # loadtest/bench_profile.py
import bench_report  # loadtest/bench_report.py
from devkit.otlp import Receiver

HERE = Path(__file__).resolve().parent


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="a,b,s,cpu,f,c,d,e,api")
    p.add_argument("--long-seconds", type=int, default=600)
    p.add_argument("--clip-seconds", type=int, default=20)
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--single-runs", type=int, default=9, help="short jobs one at a time of figure s")
    p.add_argument("--converters", default="1,2", help="converter counts for figure b")
    p.add_argument("--big-mb", type=int, default=1024, help="large upload of figure c (compared with 50 MB)")
    p.add_argument("--steps", default="5,10,20,40", help="Locust user counts of figure d")
    p.add_argument("--step-seconds", type=int, default=30)
    p.add_argument("--out", type=Path, default=HERE / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=HERE / "benchmarks.json")
    p.add_argument("--keep", action="store_true",
                   help="carry the figures this run does not measure over from --json, each marked with its date")
    return p


def carried_over(path: Path, data: dict) -> None:
    """The figures of an earlier report that this run did not measure, with a note saying from when."""
    if not path.exists():
        return
    earlier = json.loads(path.read_text())
    date = earlier.get("machine", {}).get("date", "an earlier run")
    kept = [key for key in earlier if key not in data and key not in ("machine", "notes")]
    for key in kept:
        data[key] = earlier[key]
    data["carried"] = {"figures": kept, "date": date}
    if kept:
        data["notes"].append(f"Figures {', '.join(kept)} were not measured in this run: carried over from the run "
                             f"of {date} (--keep).")


def measure(args: argparse.Namespace, only: set[str], files: dict, data: dict) -> None:
    """Figures a-d on one isolated stack, removed at the end whatever happens."""
    otlp = Receiver()
    stack = figures.BenchStack(otlp)
    figures.log(f"starting the isolated stack in {stack.home} ...")
    try:
        stack.up()
        if "a" in only:
            data["a"] = figures.figure_a(stack, otlp, files)
        if "b" in only:
            data["b"] = [figures.figure_b(stack, files, args.clips, int(n), otlp) for n in args.converters.split(",")]
        if "s" in only:
            data["s"] = bench_profile.figure_single(stack, otlp, files, args.single_runs)
            data["s_vp9"] = bench_profile.figure_single(stack, otlp, files, args.single_runs, key="vp9")
        if "cpu" in only:
            data["cpu"] = bench_cpu.figure_cpu(stack, files)
        if "f" in only:  # on the stack's storage, its services idle
            data["f"] = bench_features.figure_features(files, mongo_uri=stack.mongo_uri)
        if "c" in only:
            data["c"] = figures.figure_c(stack, files, [50, args.big_mb])
            if args.big_mb != 1024:
                data["notes"].append(f"Memory figure c uses a {args.big_mb} MB upload (not 1 GB) against 50 MB.")
        if "api" in only:
            data["api"] = bench_api.figure_api(stack, files["clip"])
        if "d" in only:
            data["d"] = figures.figure_d(stack, [int(x) for x in args.steps.split(",")], args.step_seconds,
                                         Path(tempfile.mkdtemp(prefix="vid2mp3-bench-locust-")))
    finally:
        stack.destroy()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    only = set(args.only.split(","))
    data: dict = {"machine": bench_report.machine(), "notes": []}
    files = figures.make_media(args.long_seconds, args.clip_seconds, [50, args.big_mb] if "c" in only else [])
    if only & {"a", "b", "c", "d", "s", "cpu", "f", "api"}:
        measure(args, only, files, data)
    if "e" in only:
        data["e"] = figures.figure_e(files, (data.get("a") or {}).get("ffmpeg_alone_s"))
    data["machine"]["loadavg_end"] = os.getloadavg()
    if args.keep:
        carried_over(args.json, data)
    bench_report.write(data, args.out, args.json)
    figures.log(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
