"""What each of issue 23's features costs (issue 24 item 5): the converter's own path for one job (probe,
ffmpeg runs, results stored into GridFS, the always-on analysis of each result and its waveform stored),
on the bench's 20 s clip and 10-minute file, each case as a ratio against the plain MP3 job of the same
file; cases alternate over the rounds (a slow moment of the machine hits every case alike), median.

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python loadtest/bench_features.py [--rounds 5] [--long-rounds 3]
        [--write loadtest/BENCHMARKS.md]     # replaces (or appends) the report's "Feature costs" section

Not the whole stack (upload, queue, job records, notification): those are the same for every case, and
figure a/s of loadtest/bench.py measure them. The source is read from its local file, not from GridFS;
a URL import is its fetch from a local HTTP server (127.0.0.1) into GridFS `videos`, then the plain job.

loadtest/bench.py runs it as figure f (`--only f`) on its stack's storage, and its report holds `markdown(result)`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests")]

import bench_figures  # noqa: E402  loadtest/bench_figures.py: the bench's media
from devkit import ffmpeg_baseline  # noqa: E402
from devkit.net import free_port, static_site  # noqa: E402

SECTION = "## Feature costs (issue 23)"
THREE_OUTPUTS = [{"format": "mp3", "bitrate": "192k"}, {"format": "opus", "bitrate": "64k"}, {"format": "flac"}]
CHAPTER_COUNT = 4  # chapters of the chaptered copies: an equal share of the file each


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="rounds on the 20 s clip")
    p.add_argument("--long-rounds", type=int, default=3, help="rounds on the 10-minute file")
    p.add_argument("--long-seconds", type=int, default=600)
    p.add_argument("--clip-seconds", type=int, default=20)
    p.add_argument("--write", type=Path, help="a BENCHMARKS.md to put the section into")
    args = p.parse_args()
    files = bench_figures.make_media(args.long_seconds, args.clip_seconds, [])
    result = figure_features(files, args.rounds, args.long_rounds)
    text = "\n".join(markdown(result))
    print(text)
    if args.write:
        write_section(args.write, text)
        bench_figures.log(f"wrote the section into {args.write}")


def figure_features(files: dict, rounds: int = 5, long_rounds: int = 3, mongo_uri: str | None = None) -> dict:
    """The figures of both files: {"clip"|"long": {"seconds", "rounds", "cases": {name: {"median_s", "ratio"}}}}."""
    home = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        with storage(home, mongo_uri), static_site(Path(files["clip"]).parent) as base_url:
            return {"clip": measure(files["clip"], home, rounds, base_url),
                    "long": measure(files["long"], home, long_rounds, base_url),
                    "loadavg_end": os.getloadavg()}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def measure(source: Path, home: Path, rounds: int, base_url: str) -> dict:
    chaptered = with_chapters(source, home)
    cases = cases_of(source, chaptered, home, f"{base_url}/{source.name}")
    times: dict[str, list[float]] = {name: [] for name in cases}
    bench_figures.log(f"{source.name}: {len(cases)} cases x {rounds} rounds ...")
    for case in cases.values():  # a first round not counted: imports, caches, the storage's first files
        case()
    for _ in range(rounds):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - started)
    plain = statistics.median(times["plain MP3 (analysis included)"])
    figures = {name: {"median_s": statistics.median(runs), "ratio": statistics.median(runs) / plain, "runs_s": runs}
               for name, runs in times.items()}
    without = figures["plain MP3 without the analysis"]["median_s"]
    figures["the analysis alone (its share of the plain job)"] = {"median_s": plain - without,
                                                                 "ratio": (plain - without) / plain}
    return {"file": source.name, "seconds": duration(source), "rounds": rounds, "cases": figures}


def cases_of(source: Path, chaptered: Path, home: Path, url: str) -> dict[str, Callable[[], None]]:
    baseline = ffmpeg_baseline.command(source, home / "baseline.mp3")
    return {
        "ffmpeg alone (baseline)": lambda: subprocess.run(baseline, check=True, stdin=subprocess.DEVNULL),
        "plain MP3 (analysis included)": lambda: job(source, [{}], home),
        "plain MP3 without the analysis": lambda: job(source, [{}], home, analyse=False),
        "3 outputs (mp3 192k + opus 64k + flac)": lambda: job(source, THREE_OUTPUTS, home),
        f"chapters carried ({CHAPTER_COUNT}, MP3)": lambda: job(chaptered, [{}], home),
        f"split=chapters ({CHAPTER_COUNT} MP3s)": lambda: job(chaptered, [{"split": "chapters"}], home),
        "trim_silence": lambda: job(source, [{"trim_silence": "true"}], home),
        "normalize": lambda: job(source, [{"normalize": "true"}], home),
        "URL import (fetch from 127.0.0.1) + plain MP3": lambda: job(fetched(url, source), [{}], home),
    }


def job(source: Path, outputs: list[dict], home: Path, analyse: bool = True) -> None:
    """What the converter does for a job once it has its video (conversion.Converter._encode, _run_all and
    _stored_result): probe, plan, ffmpeg run(s), results stored, each analysed (in the run: analysis.Meter;
    a stream copy from its file) and its waveform stored."""
    from services.common.options import parse
    from services.common.storage import files
    from services.common.storage.connection import new_id
    from services.converter import analysis, encode, plan, probe

    info = probe.probe(str(source))
    targets = plan.targets_of(info, [parse(fields) for fields in outputs], "bench")
    work = tempfile.mkdtemp(dir=home)
    if analyse:
        analysis.attach_meters(str(source), info, targets)
    try:
        if plan.streamable(targets):
            with files.open_writer(files.results(), new_id(), "bench.mp3", {}) as writer:
                encode.convert_targets(str(source), info, targets, work, targets[0].seconds, sink=writer)
            paths = [encode.tee_path(work, targets[0])]
        else:
            for n, target in enumerate(targets):
                target.path = os.path.join(work, f"result-{n}.{target.options.spec.extension}")
            for run in plan.runs_of(targets):
                encode.convert_targets(str(source), info, run, work, plan.output_seconds(info, run[0].options))
            paths = [target.path for target in targets]
            for path in paths:
                store(path)
        for target, path in zip(targets, paths, strict=True) if analyse else []:
            _, peaks = target.meter.result() if target.meter is not None else analysis.analyse(path, work)
            with files.open_writer(files.results(), new_id(), "bench.json", {"kind": "waveform"}) as writer:
                writer.write(peaks)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def store(path: str) -> None:
    from services.common.storage import files
    from services.common.storage.connection import new_id
    from services.converter import encode

    with files.open_writer(files.results(), new_id(), os.path.basename(path), {}) as writer, \
            open(path, "rb") as result:
        while block := result.read(encode.READ_BLOCK):
            writer.write(block)


def fetched(url: str, source: Path) -> Path:
    """A URL import's first step (importing._fetch_into_storage): the source fetched into GridFS `videos`.
    The plain job then reads the same bytes from their local file (as every other case)."""
    from services.common.storage import files
    from services.common.storage.connection import new_id
    from services.converter import fetch

    writer = files.open_writer(files.videos(), new_id(), "import.mp4", {"source_host": "127.0.0.1"})
    fetch.fetch(url, writer, lambda received, total: None)
    writer.close()
    return source


def with_chapters(source: Path, home: Path) -> Path:
    """A copy of `source` (streams copied) with CHAPTER_COUNT equal chapters."""
    seconds = duration(source)
    metadata = home / f"{source.stem}.chapters.txt"
    lines = [";FFMETADATA1"]
    for n in range(CHAPTER_COUNT):
        start, end = round(seconds * n / CHAPTER_COUNT * 1000), round(seconds * (n + 1) / CHAPTER_COUNT * 1000)
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}", f"title=Part {n + 1}"]
    metadata.write_text("\n".join(lines) + "\n")
    target = home / f"{source.stem}-chaptered{source.suffix}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-f", "ffmetadata", "-i", str(metadata),
                    "-map", "0", "-map_chapters", "1", "-c", "copy", str(target)], check=True)
    return target


def duration(path: Path) -> float:
    from devkit.media import duration_of

    return duration_of(path)


@contextmanager
def storage(home: Path, mongo_uri: str | None) -> Iterator[None]:
    """GridFS on `mongo_uri`, else on a MongoDB stand-in of our own (as loadtest/bench_outputs.py)."""
    saved = {name: os.environ.get(name) for name in ("MONGO_URI", "MONGO_VIDEOS_DB", "MONGO_MP3S_DB",
                                                     "IMPORT_ALLOWED_NETWORKS")}
    mongo = None
    if mongo_uri is None:
        port = free_port()
        mongo = subprocess.Popen([str(Path(sys.executable).parent / "nx-27017"), "--data-dir", str(home / "mongo"),
                                  "--host", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        mongo_uri = f"mongodb://127.0.0.1:{port}"
        wait_for_port(port, mongo)
    os.environ.update(MONGO_URI=mongo_uri, MONGO_VIDEOS_DB="bench_features_videos",
                      MONGO_MP3S_DB="bench_features_mp3s", IMPORT_ALLOWED_NETWORKS="127.0.0.0/8")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if mongo is not None:
            mongo.terminate()
            mongo.wait()


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    """Until the stand-in accepts connections (a fixed sleep lost the race on a busy machine)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the MongoDB stand-in did not listen on port {port}")




# ---------------------------------------------------------------- the report's section


def markdown(result: dict) -> list[str]:
    """The report's section: one row per case, both files, ratios against the plain MP3 job."""
    clip, long = result["clip"], result["long"]
    lines = [SECTION, "",
             "The converter's own path for one job once it has the video (probe, ffmpeg, results into GridFS, each "
             "result's analysis and waveform stored), `loadtest/bench_features.py`; cases alternated, median of "
             f"{clip['rounds']} rounds ({clip['file']}) and {long['rounds']} rounds ({long['file']}). Ratio: against "
             "the plain MP3 job of the same file (ffmpeg alone is the baseline of every other figure).", "",
             f"| case | {clip['seconds']:.0f} s clip | ratio | {long['seconds'] / 60:.3g}-minute file | ratio |",
             "|---|---:|---:|---:|---:|"]
    for name in clip["cases"]:
        a, b = clip["cases"][name], long["cases"][name]
        lines.append(f"| {name} | {a['median_s']:.2f} s | {a['ratio']:.2f} "
                     f"| {b['median_s']:.2f} s | {b['ratio']:.2f} |")
    lines += ["", "The analysis' row: the plain job's time less the same job without it, a share of the plain job.",
              f"Load average at the end: {', '.join(f'{x:.2f}' for x in result['loadavg_end'])} "
              "(the machine is shared: figures are ratios within one run).", ""]
    return lines


def write_section(report: Path, section: str) -> None:
    """Put `section` into `report` in place of an earlier one (up to the next `## ` heading), else at its end."""
    text = report.read_text() if report.exists() else ""
    if SECTION in text:
        before, rest = text.split(SECTION, 1)
        after = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = before + section.rstrip("\n") + "\n" + after
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    report.write_text(text)


if __name__ == "__main__":
    main()
