"""What several outputs and a result kept as a file cost (issue 23), on the converter's own functions
with the MongoDB stand-in as storage: the encode + store part of a job of a 20 s clip, median of runs.

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python loadtest/bench_outputs.py [--seconds 20] [--runs 7]

Modes of one MP3 (the default job): streamed into GridFS as before (encode.convert), streamed with a copy
kept in the work folder for analysis (the converter now), written to the work folder then stored. And
three outputs (mp3 192k, opus 64k, flac): one ffmpeg run (one decode) against three separate runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devkit.media import make_media
from devkit.net import free_port


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-outputs-"))
    port = free_port()
    mongo = subprocess.Popen([str(Path(sys.executable).parent / "nx-27017"), "--data-dir", str(home / "mongo"),
                              "--host", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    os.environ.update(MONGO_URI=f"mongodb://127.0.0.1:{port}", MONGO_VIDEOS_DB="bench_videos",
                      MONGO_MP3S_DB="bench_mp3s")
    try:
        time.sleep(2)
        clip = make_media(home / "clip.mp4", seconds=args.seconds)
        for name, figure in measure(clip, home, args.runs).items():
            print(f"{name:<48} {figure * 1000:8.0f} ms")
    finally:
        mongo.terminate()
        mongo.wait()


def measure(clip: Path, home: Path, runs: int) -> dict[str, float]:
    from services.common.options import parse
    from services.common.storage import files
    from services.common.storage.connection import new_id
    from services.converter import encode, plan, probe

    info = probe.probe(str(clip))
    work = home / "work"
    work.mkdir()

    def store(path: str) -> None:
        with files.open_writer(files.results(), new_id(), "x", {}) as writer, open(path, "rb") as result:
            while block := result.read(encode.READ_BLOCK):
                writer.write(block)

    def streamed_before() -> None:
        with files.open_writer(files.results(), new_id(), "x", {}) as writer:
            encode.convert(str(clip), info, writer, str(work / "ffmpeg.log"))

    def streamed_with_copy() -> None:
        targets = plan.targets_of(info, [parse({})], "clip")
        with files.open_writer(files.results(), new_id(), "x", {}) as writer:
            encode.convert_targets(str(clip), info, targets, str(work), 20, sink=writer)

    def to_files(outputs: list[dict], together: bool) -> None:
        targets = plan.targets_of(info, [parse(fields) for fields in outputs], "clip")
        for n, target in enumerate(targets):
            target.path = str(work / f"result-{n}.{target.options.spec.extension}")
        for run in ([targets] if together else [[target] for target in targets]):
            encode.convert_targets(str(clip), info, run, str(work), 20)
        for target in targets:
            store(target.path)

    three = [{"format": "mp3", "bitrate": "192k"}, {"format": "opus", "bitrate": "64k"}, {"format": "flac"}]
    cases = {
        "mp3, streamed into GridFS (before)": streamed_before,
        "mp3, streamed + copy kept for analysis (now)": streamed_with_copy,
        "mp3, work-folder file, then stored": lambda: to_files([{}], True),
        "mp3 192k + opus 64k + flac, one run": lambda: to_files(three, True),
        "mp3 192k + opus 64k + flac, three runs": lambda: to_files(three, False),
    }
    figures: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved: a slow moment of the machine hits every case alike
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            figures[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in figures.items()}


if __name__ == "__main__":
    main()
