"""The bench's measurements (figures a-e), each compared with a baseline measured in the same run on the
same files (ffmpeg alone with the converter's encoder settings: tests/devkit/ffmpeg_baseline.py).

Imported by loadtest/bench.py (its sibling modules by name; devkit and services are installed).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from requests_toolbelt import MultipartEncoder

import bench_profile  # loadtest/bench_profile.py
import media  # loadtest/media.py
import run as locust_run  # loadtest/run.py
from devkit import ffmpeg_baseline
from devkit.net import free_port, wait_ready
from devkit.otlp import Receiver
from devkit.stack import ROOT, IsolatedStack

HERE = Path(__file__).resolve().parent
MEDIA_DIR = Path(tempfile.gettempdir()) / "vid2mp3-bench-media"
MOVIEPY_VENV = Path("/tmp/moviepy-venv")
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class BenchStack(IsolatedStack):
    """The isolated stack, traced into `otlp`, plus extra converters and the pids the memory figure reads."""

    def __init__(self, otlp: Receiver):
        super().__init__("bench", otlp=otlp, settings={
            "LOG_LEVEL": "WARNING", "LOGIN_MAX_FAILURES_PER_ADDRESS": "100000", "REGISTER_MAX_PER_ADDRESS": "100000",
            "OTEL_BSP_SCHEDULE_DELAY": "500"})
        self.extra: list[subprocess.Popen] = []

    def up(self, attempts: int = 2) -> None:
        super().up(attempts)
        import pymongo

        self.db = pymongo.MongoClient(self.mongo_uri)[self.env["MONGO_JOBS_DB"]]

    def gateway_worker(self) -> int:
        """The gateway's gunicorn worker."""
        return gunicorn_worker(self.pid("gateway"))

    def add_converter(self) -> None:
        port = free_port()
        env = dict(self.env, MONGO_URI=self.mongo_uri, CONVERTER_METRICS_PORT=str(port), PYTHONUNBUFFERED="1",
                   OTEL_SERVICE_NAME="converter", AUTH_URL=self.auth, WORK_DIR=str(self.home / "work"))
        with open(self.home / "logs" / f"converter-{len(self.extra) + 2}.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "services.converter"], cwd=ROOT, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.extra.append(proc)
        wait_ready(f"http://127.0.0.1:{port}/readyz", "extra converter", proc)

    def stop_extra(self) -> None:
        for proc in self.extra:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.extra.clear()

    def destroy(self) -> None:
        self.stop_extra()
        super().destroy()


class User:
    def __init__(self, base: str):
        self.base = base
        self.email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        self.password = password = "bench-password-42"
        assert requests.post(f"{base}/register", json={"email": self.email, "password": password},
                             timeout=30).status_code == 201
        response = requests.post(f"{base}/login", auth=(self.email, password), timeout=30)
        response.raise_for_status()
        self.headers = {"Authorization": f"Bearer {response.text.strip()}"}

    def upload(self, path: Path) -> tuple[str, float]:
        """(job id, seconds the upload took until 202); the body is streamed from disk as it is sent."""
        with open(path, "rb") as file:
            body = MultipartEncoder(fields={"file": (path.name, file, "application/octet-stream")})
            started = time.perf_counter()
            response = requests.post(f"{self.base}/upload", data=body, timeout=3600,
                                     headers={**self.headers, "Content-Type": body.content_type})
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
        return response.json()["job_id"], time.perf_counter() - started

    def wait(self, job_id: str, timeout: float = 3600, interval: float = 0.2) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = requests.get(f"{self.base}/jobs/{job_id}", headers=self.headers, timeout=30).json()
            if job["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {job.get('reason')}")
            if job["status"] == "done":
                return job
            time.sleep(interval)
        raise RuntimeError(f"job {job_id} not done after {timeout} s")


# ----------------------------------------------------------------------------- media and baselines


def make_media(long_seconds: int, clip_seconds: int, big_mb: list[int]) -> dict[str, Path]:
    MEDIA_DIR.mkdir(parents=True, exist_ok=True)
    files = {"long": MEDIA_DIR / f"long-{long_seconds}s-720p-2M.mp4", "clip": MEDIA_DIR / f"clip-{clip_seconds}s.mp4"}
    if not files["long"].exists():
        # 2 Mb/s: a typical 720p bitrate (ultrafast's default quality on testsrc2 gives ~6.6 Mb/s).
        log(f"generating {files['long'].name} (720p H.264 2 Mb/s, AAC 128 kb/s, ultrafast) ...")
        media.generate(files["long"], long_seconds, "1280x720",
                       H264 + ["-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M"], ["-c:a", "aac", "-b:a", "128k"])
    if not files["clip"].exists():
        media.generate(files["clip"], clip_seconds, "320x240", H264, ["-c:a", "aac", "-b:a", "128k"])
    # the short WebM of issue 24 (a tutorial system beat us on it): VP9 and Opus, 12 s
    files["vp9"] = MEDIA_DIR / "clip-12s-vp9-opus.webm"
    if not files["vp9"].exists():
        media.generate(files["vp9"], 12, "320x240", VP9, ["-c:a", "libopus", "-b:a", "96k"])
    for mb in big_mb:
        # Uncompressed 640x360 video (8.6 MB/s): a big file quickly, with a real audio track.
        path = files[f"big{mb}"] = MEDIA_DIR / f"big-{mb}MB.mkv"
        if not path.exists():
            log(f"generating {path.name} ...")
            seconds = mb * 1_000_000 / (640 * 360 * 1.5 * 25)
            media.generate(path, round(seconds, 2), "640x360", ["-c:v", "rawvideo", "-pix_fmt", "yuv420p"],
                           ["-c:a", "aac"], video_source="testsrc")
    return files


def trace_id_of(job_doc: dict) -> str | None:
    parts = (job_doc.get("trace") or {}).get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 else None


SPAN_LABELS = {"POST /upload": "upload+store (gateway span)", "process": "whole conversion (converter span)",
               "gridfs read video": "GridFS read, served to the probe and ffmpeg (overlaps them)",
               "probe media": "probe (PyAV, in-process)",
               "ffmpeg convert": "ffmpeg, MP3 streamed into GridFS"}


def span_breakdown(otlp: Receiver, trace_id: str | None, wait: float = 3) -> dict:
    """Seconds of the job's main gateway and converter spans, by label."""
    if not trace_id:
        return {}
    time.sleep(wait)  # batch span processors flush every 0.5 s
    found = {}
    for span in otlp.trace(trace_id):
        label = SPAN_LABELS.get("process" if span["name"].startswith("process ") else span["name"])
        if label and span["service"] in ("gateway", "converter"):
            found[label] = round((span["end_ns"] - span["start_ns"]) / 1e9, 3)
    return found


# ----------------------------------------------------------------------------- figures


def gunicorn_worker(master: int) -> int:
    """The gunicorn worker of a master whose pid devstack recorded: its child (GUNICORN_WORKERS=1)."""
    return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])


def cpu_seconds(pid: int, own: bool = True, children: bool = True) -> float:
    """user + system CPU seconds so far of a process and its threads (`own`) and of its children that
    have ended (`children`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ((utime + stime) * own + (cutime + cstime) * children) / os.sysconf("SC_CLK_TCK")


def conversion_cpu(stack: BenchStack) -> dict[str, float]:
    """CPU seconds so far of the converter (its Python, and its children that ended: ffmpeg) and of the
    MongoDB stand-in (the upload has ended before the first reading: its share is the video's read)."""
    converter = stack.pid("converter")
    return {"converter (Python)": cpu_seconds(converter, children=False),
            "ffmpeg (the converter's child)": cpu_seconds(converter, own=False),
            "MongoDB stand-in": cpu_seconds(stack.pid("mongodb"), children=False)}


def figure_a(stack: BenchStack, otlp: Receiver, files: dict, rounds: int = 3) -> dict:
    """Pipeline and converter time of one long video against ffmpeg alone on the same file, plain and making
    the analysis too: `rounds` rounds of the three (this machine's speed moves within a minute), each job a
    distinct copy (the same bytes again would be reused, not converted); medians of the rounds' ratios."""
    long = files["long"]
    log(f"a: {rounds} rounds of ffmpeg alone, with the analysis, and the pipeline on {long.name} "
        f"({long.stat().st_size / 1e6:.0f} MB) ...")
    user, runs, copies = User(stack.gateway), [], distinct_copies(long, rounds)
    try:
        for copy in copies:
            alone = ffmpeg_baseline.seconds(long, runs=1)
            analysed = ffmpeg_baseline.seconds(long, runs=1, analysed=True)
            runs.append(_pipeline_round(stack, otlp, user, copy) | {
                "ffmpeg_alone_s": alone["median_s"], "ffmpeg_analysed_s": analysed["median_s"],
                "ffmpeg_command": alone["command"], "ffmpeg_analysed_command": analysed["command"]})
            copy.unlink()  # 160 MB each
    finally:
        shutil.rmtree(copies[0].parent, ignore_errors=True)
    typical = sorted(runs, key=lambda run: run["pipeline_s"])[len(runs) // 2]  # its spans and CPU are shown

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    def ratio(of: str, to: str) -> float:  # each round's own ratio: the machine's speed moved between rounds
        return statistics.median(run[of] / run[to] for run in runs)

    result = {key: typical[key] for key in ("spans_s", "cpu_s", "ffmpeg_command", "ffmpeg_analysed_command")}
    result.update({key: median(key) for key in ("upload_s", "pipeline_s", "queue_wait_s", "converter_s",
                                                 "ffmpeg_alone_s", "ffmpeg_analysed_s")})
    result.update({"file": long.name, "bytes": long.stat().st_size, "rounds": runs,
                   "ffmpeg_runs_s": [run["ffmpeg_alone_s"] for run in runs],
                   "pipeline_ratio": ratio("pipeline_s", "ffmpeg_alone_s"),
                   "converter_ratio": ratio("converter_s", "ffmpeg_alone_s"),
                   "pipeline_vs_analysed": ratio("pipeline_s", "ffmpeg_analysed_s")})
    log(f"a: {json.dumps(result, default=str)}")
    return result


def _pipeline_round(stack: BenchStack, otlp: Receiver, user: "User", video: Path) -> dict:
    """One upload of `video` followed to done: its times, the conversion's CPU and the job's main spans."""
    job_id, upload_s = user.upload(video)
    cpu_before = conversion_cpu(stack)
    user.wait(job_id, interval=0.2)
    cpu = {name: round(seconds - cpu_before[name], 2) for name, seconds in conversion_cpu(stack).items()}
    doc = stack.db.jobs.find_one({"_id": job_id})
    times = doc["times"]
    return {"upload_s": upload_s, "pipeline_s": times["done"] - doc["created"],
            "queue_wait_s": times["converting"] - doc["created"], "converter_s": times["done"] - times["converting"],
            "spans_s": span_breakdown(otlp, trace_id_of(doc)), "cpu_s": cpu}


def distinct_copies(path: Path, n: int) -> list[Path]:
    """`n` copies of a media file, each with different bytes (media.distinct) and the same media."""
    folder = Path(tempfile.mkdtemp(prefix="vid2mp3-bench-distinct-"))
    data = path.read_bytes()
    copies = [folder / f"{i}-{path.name}" for i in range(n)]
    for copy in copies:
        copy.write_bytes(media.distinct(path.name, data))
    return copies


def figure_b(stack: BenchStack, files: dict, n: int, converters: int, otlp: Receiver | None = None) -> dict:
    """Jobs per second for `n` short clips submitted at once, against ffmpeg alone run sequentially."""
    clip = files["clip"]
    alone = ffmpeg_baseline.seconds(clip, runs=n)
    ffmpeg_rate = n / sum(alone["runs_s"])
    analysed_rate = n / sum(ffmpeg_baseline.seconds(clip, runs=n, analysed=True)["runs_s"])
    users = [User(stack.gateway) for _ in range(4)]
    for _ in range(converters - 1):
        stack.add_converter()
    try:
        log(f"b: {n} x {clip.name} submitted at once, {converters} converter(s) ...")
        copies = distinct_copies(clip, n)  # repeats of one clip would be reused (dedup), not converted
        with ThreadPoolExecutor(8) as pool:
            submitted = list(pool.map(lambda i: (users[i % 4], users[i % 4].upload(copies[i])[0]), range(n)))
        for user, job_id in submitted:
            user.wait(job_id, timeout=900, interval=0.5)
    finally:
        stack.stop_extra()
    docs = [stack.db.jobs.find_one({"_id": job_id}) for _, job_id in submitted]
    first = min(d["created"] for d in docs)
    last = max(d["times"]["done"] for d in docs)
    rate = n / (last - first)
    conv = [d["times"]["done"] - d["times"]["converting"] for d in docs]
    result = {"clips": n, "clip": clip.name, "converters": converters, "jobs_per_s": rate,
              "ffmpeg_sequential_jobs_per_s": ffmpeg_rate, "ffmpeg_per_clip_s": statistics.median(alone["runs_s"]),
              "converter_per_job_median_s": statistics.median(conv), "ratio": rate / ffmpeg_rate,
              "ffmpeg_analysed_sequential_jobs_per_s": analysed_rate, "analysed_ratio": rate / analysed_rate,
              "span_s": last - first}
    if otlp is not None:  # the per-job profile (loadtest/bench_profile.py)
        result["profile"] = bench_profile.profile(otlp, [trace_id_of(d) for d in docs])
        result["gaps"] = bench_profile.gaps(docs) if converters == 1 else None
    log(f"b: {json.dumps(result)}")
    return result


class RssSampler(threading.Thread):
    """Peak RSS of some pids: VmHWM after resetting it (clear_refs 5), cross-checked by polling VmRSS."""

    def __init__(self, pids: dict[str, int]):
        super().__init__(daemon=True)
        self.pids, self.peak_polled = pids, {name: 0 for name in pids}
        self.stop = threading.Event()
        self.baseline = {name: self._field(pid, "VmRSS") for name, pid in pids.items()}
        for pid in pids.values():
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    @staticmethod
    def _field(pid: int, field: str) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for name, pid in self.pids.items():
                try:
                    self.peak_polled[name] = max(self.peak_polled[name], self._field(pid, "VmRSS"))
                except OSError:
                    pass

    def finish(self) -> dict:
        self.stop.set()
        self.join()
        return {name: {"baseline_mb": self.baseline[name] / 2**20, "peak_hwm_mb": self._field(pid, "VmHWM") / 2**20,
                       "peak_polled_mb": self.peak_polled[name] / 2**20} for name, pid in self.pids.items()}


def figure_c(stack: BenchStack, files: dict, sizes: list[int], rounds: int = 2) -> dict:
    """Peak RSS per upload size; the sizes alternate for `rounds` rounds and the highest peak per size counts
    (RSS left over from earlier uploads shifts a single measurement by tens of MB)."""
    gateway_worker, converter = stack.gateway_worker(), stack.pid("converter")
    result: dict = {}
    for round_no in range(rounds):
        user = User(stack.gateway)  # a user per round: one user's repeat of a file is reused (dedup), not converted
        for mb in sizes:
            path = files[f"big{mb}"]
            log(f"c: round {round_no + 1}: memory while uploading and converting {path.name} ...")
            upload_sampler = RssSampler({"gateway worker": gateway_worker})
            upload_sampler.start()
            job_id, upload_s = user.upload(path)
            upload = upload_sampler.finish()
            convert_sampler = RssSampler({"converter": converter})
            convert_sampler.start()
            user.wait(job_id, interval=0.5)
            convert = convert_sampler.finish()
            doc = stack.db.jobs.find_one({"_id": job_id})
            measured = {"bytes": path.stat().st_size, "upload_s": upload_s,
                        "converter_s": doc["times"]["done"] - doc["times"]["converting"], **upload, **convert}
            result.setdefault(f"{mb}MB", []).append(measured)
            log(f"c: {json.dumps(measured)}")
    return result


API_ENDPOINTS = ("/login", "/upload", "/jobs/[id]", "/download", "/jobs")
LATENCY_ENDPOINTS = ("/upload", "/jobs/[id]", "/download")


def figure_d(stack: BenchStack, steps: list[int], step_seconds: int, out: Path) -> dict:
    """Locust capacity steps (loadtest/api_capacity_locustfile.py) and the first step past the knee."""
    result = {"steps": [], "knee_users": None}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LOADTEST_MEDIA_DIR"] = str(MEDIA_DIR / "pool")
    for users in steps:
        folder = out / f"capacity-{users}u"
        log(f"d: {users} users for {step_seconds} s ...")
        code = locust_run.run(users, users, f"{step_seconds}s", stack.gateway, folder,
                              locustfile=HERE / "api_capacity_locustfile.py", env=env, timeout=step_seconds + 180)
        with open(folder / "locust_exceptions.csv", newline="") as f:
            exceptions = list(csv.DictReader(f))
        if exceptions:
            raise RuntimeError(f"locust users raised: {exceptions[0]}")
        step = _capacity_step(users, locust_run.read_stats(folder), code)
        result["steps"].append(step)
        reason = _knee_reason(result["steps"]) if result["knee_users"] is None else None
        if reason:
            result["knee_users"], result["knee_reason"] = users, reason
        log(f"d: {users} users: {step['api']}")
    return result


def _capacity_step(users: int, rows: list[dict], code: int) -> dict:
    step = {"users": users, "endpoints": {}, "locust_exit_code": code}
    for row in rows:
        key = row["Name"] if row["Type"] else "Aggregated"
        step["endpoints"][key] = {"type": row["Type"], "requests": int(row["Request Count"]),
                                  "failures": int(row["Failure Count"]), "rps": float(row["Requests/s"]),
                                  "p50": _num(row["50%"]), "p95": _num(row["95%"]), "p99": _num(row["99%"])}
    # The steady-state API mix (on_start's register and the JOB pseudo-requests left out).
    api = {k: v for k, v in step["endpoints"].items() if k in API_ENDPOINTS}
    step["api"] = {"rps": sum(v["rps"] for v in api.values()),
                   "p95": max((api[k]["p95"] for k in LATENCY_ENDPOINTS if k in api), default=0),
                   "requests": sum(v["requests"] for v in api.values()),
                   "failures": sum(v["failures"] for v in step["endpoints"].values() if v["type"])}
    step["error_rate"] = step["api"]["failures"] / max(step["api"]["requests"], 1)
    return step


def _knee_reason(steps: list[dict]) -> str | None:
    """Knee of the last step: errors above 1 %, p95 of upload/status/download more than doubled vs the first
    step, or API RPS growing less than 10 % although the users doubled."""
    if len(steps) < 2:
        return None
    base_p95 = max(steps[0]["api"]["p95"], 1)
    step, prev = steps[-1], steps[-2]
    now, before = step["api"], prev["api"]
    if step["error_rate"] > 0.01 or now["p95"] > 2 * base_p95 or now["rps"] < before["rps"] * 1.1:
        return (f"error rate {step['error_rate']:.1%}, max p95 of upload/status/download "
                f"{now['p95']:.0f} ms (first step {base_p95:.0f} ms), API RPS "
                f"{now['rps']:.1f} vs {before['rps']:.1f} at {prev['users']} users")
    return None


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


# A seed-style converter's work per job: the tutorial's worker imports moviepy once, then for each job
# opens the video and writes its audio as MP3 (moviepy runs its own static ffmpeg, from imageio-ffmpeg).
# Arguments: an output folder, then FILE:RUNS pairs; prints {file: [seconds of each run]} as JSON.
MOVIEPY_SCRIPT = """import json, os, sys, time
try:
    from moviepy import VideoFileClip
except ImportError:
    from moviepy.editor import VideoFileClip
times = {}
for spec in sys.argv[2:]:
    path, runs = spec.rsplit(':', 1)
    for n in range(int(runs)):
        t = time.perf_counter()
        clip = VideoFileClip(path)
        clip.audio.write_audiofile(os.path.join(sys.argv[1], f'{n}.mp3'), bitrate='192k', logger=None)
        clip.close()
        times.setdefault(path, []).append(time.perf_counter() - t)
print(json.dumps(times))
"""


def figure_e(files: dict, alone_s: float | None, short_runs: int = 5) -> dict:
    """The seed's moviepy extraction, as a reference: once on the long file, and `short_runs` times on
    each short clip (the median), the conversion alone (the seed's storage round trips not counted)."""
    python = MOVIEPY_VENV / "bin" / "python"
    try:
        if not python.exists():
            log("e: creating /tmp/moviepy-venv and installing moviepy ...")
            subprocess.run(["python3", "-m", "venv", str(MOVIEPY_VENV)], check=True)
            subprocess.run([str(MOVIEPY_VENV / "bin" / "pip"), "install", "-q", "moviepy"], check=True, timeout=900)
        version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('moviepy'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except Exception as exc:
        return {"error": f"moviepy could not be installed: {exc}"}
    if alone_s is None:  # figure a was not measured in this run: ffmpeg alone on the long file, now
        alone_s = ffmpeg_baseline.seconds(files["long"], runs=1)["median_s"]
    shorts = [files[key] for key in ("clip", "vp9") if key in files]
    log(f"e: moviepy {version} on {files['long'].name} and {', '.join(f.name for f in shorts)} ...")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([str(python), "-c", MOVIEPY_SCRIPT, tmp, f"{files['long']}:1",
                               *(f"{clip}:{short_runs}" for clip in shorts)],
                              capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"version": version, "error": done.stderr.strip()[-500:]}
    times = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = times.pop(str(files["long"]))[0]
    return {"version": version, "seconds": seconds, "ratio": seconds / alone_s if alone_s else None,
            "short_runs": short_runs,
            "short_median_s": {Path(path).name: statistics.median(runs) for path, runs in times.items()}}
