"""What storage holds before and after a run of jobs, with retention on (run on demand, not in CI).

    .venv/bin/python loadtest/storage_retention.py [--jobs 50] [--clip-seconds 20]

On its own isolated stack (tests/devkit/stack.py): stored bytes and files, measured in GridFS
itself, (1) before, (2) after N uploads are converted, (3) after a janitor round with the videos'
retention over, (4) after a round with the MP3s' retention over too. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo
import requests

from devkit.client import Client
from devkit.media import make_media
from devkit.stack import ROOT, IsolatedStack


def stored(stack: IsolatedStack) -> dict[str, tuple[int, int]]:
    client = pymongo.MongoClient(stack.mongo_uri)
    sizes = {}
    for kind in ("videos", "mp3s"):
        files = list(client[stack.env[f"MONGO_{kind.upper()}_DB"]].fs.files.find({}, {"length": 1}))
        sizes[kind] = (len(files), sum(f["length"] for f in files))
    return sizes


def janitor_round(stack: IsolatedStack, **settings) -> None:
    env = dict(stack.env, OTEL_SERVICE_NAME="janitor", MONGO_URI=stack.mongo_uri,
               **{k: str(v) for k, v in settings.items()})
    subprocess.run([sys.executable, "-m", "services.janitor", "--once"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)


def convert(stack: IsolatedStack, clip: Path, count: int) -> None:
    user = Client(stack.gateway).signed_up()
    ids = [user.upload(clip, f"clip-{i}.mp4").json()["job_id"] for i in range(count)]
    deadline = time.monotonic() + 60 + 10 * count
    while time.monotonic() < deadline:
        views = [requests.get(f"{stack.gateway}/jobs/{i}", headers=user.auth, timeout=10).json() for i in ids]
        if all(v["status"] == "done" for v in views):
            return
        time.sleep(1)
    raise SystemExit("jobs did not finish in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--clip-seconds", type=float, default=20)
    args = parser.parse_args()
    clip = make_media(Path(tempfile.mkdtemp()) / "clip.mp4", seconds=args.clip_seconds)
    stack = IsolatedStack("storage", settings={"REGISTER_MAX_PER_ADDRESS": "1000", "LOG_LEVEL": "WARNING"})
    rows = []
    try:
        stack.up(attempts=2)
        rows.append(("before", stored(stack)))
        convert(stack, clip, args.jobs)
        rows.append((f"after {args.jobs} jobs", stored(stack)))
        janitor_round(stack, VIDEO_RETENTION_SECONDS=0)
        rows.append(("janitor: videos' retention over", stored(stack)))
        janitor_round(stack, VIDEO_RETENTION_SECONDS=0, RESULT_RETENTION_SECONDS=0)
        rows.append(("janitor: MP3s' retention over", stored(stack)))
    finally:
        stack.destroy()
    print(f"{args.jobs} jobs of a {args.clip_seconds:g} s clip ({clip.stat().st_size} bytes)\n")
    print("| moment | videos (files, MB) | MP3s (files, MB) |\n|---|---|---|")
    for moment, sizes in rows:
        print(f"| {moment} | " + " | ".join(f"{n}, {b / 1e6:.2f}" for n, b in sizes.values()) + " |")


if __name__ == "__main__":
    main()
