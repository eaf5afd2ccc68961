"""vid2mp3 benchmarks, run on demand (not in CI): writes loadtest/BENCHMARKS.md and loadtest/benchmarks.json.

    .venv/bin/python loadtest/bench.py                # everything (~15-25 min on 2 cores)
    .venv/bin/python loadtest/bench.py --only a,b     # some figures: a overhead, b throughput, c memory,
                                                      # d API capacity, e moviepy reference
    .venv/bin/python loadtest/bench.py --long-seconds 120 --big-mb 300 --clips 20

It starts its own isolated local stack (own VID2MP3_HOME under /tmp, free ports, unique queue and
database names, traces exported to an in-process OTLP receiver so the time of each stage can be
read from the spans), measures, and stops and removes it at the end. Every figure is compared
with a baseline measured in the same run on the same files (ffmpeg alone, same command as the
converter: services.converter.media.mp3_command).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import media  # noqa: E402  (loadtest/media.py)
import run as locust_run  # noqa: E402  (loadtest/run.py)

PY = str(Path(sys.executable))
MEDIA_DIR = Path(tempfile.gettempdir()) / "vid2mp3-bench-media"
MOVIEPY_VENV = Path("/tmp/moviepy-venv")
TARGETS = {"pipeline": 1.25, "converter": 1.10, "throughput": 0.7, "memory_mb": 30}
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- span receiver


class SpanSink:
    """OTLP/HTTP trace receiver on loopback that keeps name, service, trace id and start/end times."""

    def __init__(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[dict] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.startswith("/v1/traces"):
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    found = []
                    for rs in request.resource_spans:
                        service = next((a.value.string_value for a in rs.resource.attributes
                                        if a.key == "service.name"), None)
                        for ss in rs.scope_spans:
                            for span in ss.spans:
                                found.append({"service": service, "name": span.name, "trace_id": span.trace_id.hex(),
                                              "start": span.start_time_unix_nano / 1e9,
                                              "end": span.end_time_unix_nano / 1e9})
                    with sink.lock:
                        sink.spans.extend(found)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def trace(self, trace_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


# ----------------------------------------------------------------------------- the isolated stack


class Stack:
    def __init__(self, sink: SpanSink):
        rid = uuid.uuid4().hex[:8]
        self.home = Path(tempfile.mkdtemp(prefix=f"vid2mp3-bench-{rid}-"))
        ports = {name: free_port() for name in ("GATEWAY_PORT", "AUTH_PORT", "MONGO_LOCAL_PORT", "SMTP_PORT",
                                                 "CONVERTER_METRICS_PORT", "NOTIFICATION_METRICS_PORT",
                                                 "GATEWAY_METRICS_PORT", "AUTH_METRICS_PORT")}
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MONGO_URI", "SMTP_HOST", "SENTRY_DSN") and not k.startswith("OTEL_")}
        self.env.update({k: str(v) for k, v in ports.items()})
        self.env.update({
            "VID2MP3_HOME": str(self.home), "VIDEO_QUEUE": f"b{rid}.video", "MP3_QUEUE": f"b{rid}.mp3",
            "MYSQL_DATABASE": f"vid2mp3_b{rid}", "MONGO_VIDEOS_DB": f"b{rid}_videos",
            "MONGO_MP3S_DB": f"b{rid}_mp3s", "MONGO_JOBS_DB": f"b{rid}_jobs",
            "JWT_SECRET": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex, "LOG_LEVEL": "WARNING",
            "LOGIN_MAX_FAILURES_PER_ADDRESS": "100000", "REGISTER_MAX_PER_ADDRESS": "100000",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}", "OTEL_BSP_SCHEDULE_DELAY": "500",
        })
        self.gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
        self.mongo_uri = f"mongodb://127.0.0.1:{ports['MONGO_LOCAL_PORT']}"
        self.extra: list[subprocess.Popen] = []

    def devstack(self, command: str) -> None:
        done = subprocess.run([PY, "-m", "services.devstack", command], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"devstack {command} failed:\n{done.stdout}\n{done.stderr}")

    def up(self) -> None:
        try:
            self.devstack("up")
        except RuntimeError as exc:  # a worker that lost a start-up race: `up` starts only what is missing
            log(f"stack start failed once, retrying: {str(exc)[-300:]}")
            self.devstack("up")
        import pymongo

        self.db = pymongo.MongoClient(self.mongo_uri)[self.env["MONGO_JOBS_DB"]]

    def pid(self, name: str) -> int:
        return int((self.home / "run" / f"{name}.pid").read_text())

    def gateway_worker(self) -> int:
        """The gunicorn worker (the child of the master whose pid devstack recorded)."""
        master = self.pid("gateway")
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return int(children[0])

    def add_converter(self) -> subprocess.Popen:
        env = dict(self.env, MONGO_URI=self.mongo_uri, METRICS_PORT=str(free_port()), PYTHONUNBUFFERED="1",
                   AUTH_URL=f"http://127.0.0.1:{self.env['AUTH_PORT']}", WORK_DIR=str(self.home / "work"))
        proc = subprocess.Popen([PY, "-m", "services.converter"], cwd=ROOT, env=env,
                                stdout=open(self.home / "logs" / "converter-2.log", "ab"), stderr=subprocess.STDOUT)
        self.extra.append(proc)
        port = env["METRICS_PORT"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return proc
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("second converter did not become ready")

    def stop_extra(self) -> None:
        for proc in self.extra:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.extra.clear()

    def down(self) -> None:
        self.stop_extra()
        try:
            self.devstack("down")
        finally:
            self._drop_names()
            shutil.rmtree(self.home, ignore_errors=True)

    def _drop_names(self) -> None:
        """Remove this run's queues and MySQL database from the machine's shared broker and MariaDB."""
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            import pika
            import pymysql

            from services.common import config, messaging

            connection = pika.BlockingConnection(messaging.connection_parameters())
            channel = connection.channel()
            for base in (self.env["VIDEO_QUEUE"], self.env["MP3_QUEUE"]):
                for name in [base, messaging.dead_queue(base)] + [messaging.retry_queue(base, d)
                                                                    for d in config.retry_delays()]:
                    channel.queue_delete(name)
            connection.close()
            conn = pymysql.connect(host="127.0.0.1", user="root", password="")
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.env['MYSQL_DATABASE']}`")
            conn.close()
        except Exception as exc:
            log(f"clean-up incomplete: {exc}")
        finally:
            os.environ.clear()
            os.environ.update(saved)


# ----------------------------------------------------------------------------- API client


class StreamedMultipart:
    """A multipart/form-data body read from disk as it is sent (requests would build it in memory)."""

    def __init__(self, path: Path, field: str = "file"):
        self.boundary = uuid.uuid4().hex
        self.head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                     f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.size = path.stat().st_size
        self.file = open(path, "rb")
        self.parts = [self.head, None, self.tail]

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def read(self, n: int = -1) -> bytes:
        while self.parts:
            part = self.parts[0]
            if part is None:
                data = self.file.read(n if n and n > 0 else 1 << 20)
                if data:
                    return data
                self.file.close()
                self.parts.pop(0)
                continue
            self.parts.pop(0)
            return part
        return b""


class User:
    def __init__(self, base: str):
        self.base = base
        self.email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        password = "bench-password-42"
        assert requests.post(f"{base}/register", json={"email": self.email, "password": password},
                             timeout=30).status_code == 201
        response = requests.post(f"{base}/login", auth=(self.email, password), timeout=30)
        response.raise_for_status()
        self.headers = {"Authorization": f"Bearer {response.text.strip()}"}

    def upload(self, path: Path) -> tuple[str, float]:
        """(job id, seconds the upload took until 202)."""
        body = StreamedMultipart(path)
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
            if job["status"] in ("done", "failed"):
                if job["status"] == "failed":
                    raise RuntimeError(f"job {job_id} failed: {job.get('reason')}")
                return job
            time.sleep(interval)
        raise RuntimeError(f"job {job_id} not done after {timeout} s")


# ----------------------------------------------------------------------------- media and baselines


def make_media(long_seconds: int, clip_seconds: int, big_mb: list[int]) -> dict[str, Path]:
    MEDIA_DIR.mkdir(parents=True, exist_ok=True)
    files = {}
    long = MEDIA_DIR / f"long-{long_seconds}s-720p-2M.mp4"
    if not long.exists():
        # 2 Mb/s: a typical 720p bitrate (ultrafast's default quality on testsrc2 gives ~6.6 Mb/s).
        log(f"generating {long.name} (720p H.264 2 Mb/s, AAC 128 kb/s, ultrafast) ...")
        media.generate(long, long_seconds, "1280x720", H264 + ["-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M"],
                       ["-c:a", "aac", "-b:a", "128k"])
    files["long"] = long
    clip = MEDIA_DIR / f"clip-{clip_seconds}s.mp4"
    if not clip.exists():
        media.generate(clip, clip_seconds, "320x240", H264, ["-c:a", "aac", "-b:a", "128k"])
    files["clip"] = clip
    for mb in big_mb:
        # Uncompressed 640x360 video (8.6 MB/s): a big file quickly, with a real audio track.
        path = MEDIA_DIR / f"big-{mb}MB.mkv"
        if not path.exists():
            log(f"generating {path.name} ...")
            seconds = mb * 1_000_000 / (640 * 360 * 1.5 * 25)
            media.generate(path, round(seconds, 2), "640x360", ["-c:v", "rawvideo", "-pix_fmt", "yuv420p"],
                           ["-c:a", "aac"], video_source="testsrc")
        files[f"big{mb}"] = path
    return files


def ffmpeg_alone(source: Path, runs: int = 3) -> dict:
    """Seconds ffmpeg takes for the converter's exact command on a local file (median of runs)."""
    from services.converter import media as converter_media

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "out.mp3")
        command = converter_media.mp3_command(str(source), target, copy_audio=False)
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "runs_s": times, "command": " ".join(command)}


def trace_id_of(job_doc: dict) -> str | None:
    parent = (job_doc.get("trace") or {}).get("traceparent", "")
    parts = parent.split("-")
    return parts[1] if len(parts) == 4 else None


def span_breakdown(sink: SpanSink, trace_id: str | None, wait: float = 3) -> dict:
    if not trace_id:
        return {}
    time.sleep(wait)  # batch span processors flush every 0.5 s
    wanted = {"POST /upload": "upload+store (gateway span)", "process": "whole conversion (converter span)",
              "gridfs read video": "GridFS read, served to ffprobe+ffmpeg (overlaps them)", "ffprobe": "ffprobe",
              "ffmpeg convert": "ffmpeg, MP3 streamed into GridFS"}
    found = {}
    for span in sink.trace(trace_id):
        label = wanted.get("process" if span["name"].startswith("process ") else span["name"])
        if label and span["service"] in ("gateway", "converter"):
            found[label] = round(span["end"] - span["start"], 3)
    return found


# ----------------------------------------------------------------------------- figures


def figure_a(stack: Stack, sink: SpanSink, files: dict) -> dict:
    long = files["long"]
    log(f"a: ffmpeg alone on {long.name} ({long.stat().st_size / 1e6:.0f} MB) ...")
    alone = ffmpeg_alone(long)
    user = User(stack.gateway)
    log("a: whole pipeline ...")
    job_id, upload_s = user.upload(long)
    user.wait(job_id, interval=0.2)
    doc = stack.db.jobs.find_one({"_id": job_id})
    times = doc["times"]
    pipeline = times["done"] - doc["created"]
    converter = times["done"] - times["converting"]
    result = {
        "file": long.name, "bytes": long.stat().st_size, "ffmpeg_alone_s": alone["median_s"],
        "ffmpeg_runs_s": alone["runs_s"], "ffmpeg_command": alone["command"],
        "upload_s": upload_s, "pipeline_s": pipeline, "queue_wait_s": times["converting"] - doc["created"],
        "converter_s": converter,
        "pipeline_ratio": pipeline / alone["median_s"], "converter_ratio": converter / alone["median_s"],
        "spans_s": span_breakdown(sink, trace_id_of(doc)),
    }
    log(f"a: {json.dumps(result, default=str)}")
    return result


def figure_b(stack: Stack, files: dict, n: int, converters: int) -> dict:
    clip = files["clip"]
    alone = ffmpeg_alone(clip, runs=n)
    ffmpeg_rate = n / sum(alone["runs_s"])
    users = [User(stack.gateway) for _ in range(4)]
    extra = [stack.add_converter() for _ in range(converters - 1)]
    try:
        log(f"b: {n} x {clip.name} submitted at once, {converters} converter(s) ...")
        with ThreadPoolExecutor(8) as pool:
            submitted = list(pool.map(lambda i: (users[i % 4], users[i % 4].upload(clip)[0]), range(n)))
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
              "span_s": last - first}
    log(f"b: {json.dumps(result)}")
    del extra
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


def figure_c(stack: Stack, files: dict, sizes: list[int], rounds: int = 2) -> dict:
    """Peak RSS per upload size; the sizes alternate for `rounds` rounds and the highest peak per size counts
    (RSS left over from earlier uploads shifts a single measurement by tens of MB)."""
    user = User(stack.gateway)
    pids = {"gateway worker": stack.gateway_worker(), "converter": stack.pid("converter")}
    result: dict = {}
    for round_no in range(rounds):
        for mb in sizes:
            path = files[f"big{mb}"]
            log(f"c: round {round_no + 1}: memory while uploading and converting {path.name} ...")
            upload_sampler = RssSampler({"gateway worker": pids["gateway worker"]})
            upload_sampler.start()
            job_id, upload_s = user.upload(path)
            upload = upload_sampler.finish()
            convert_sampler = RssSampler({"converter": pids["converter"]})
            convert_sampler.start()
            user.wait(job_id, interval=0.5)
            convert = convert_sampler.finish()
            doc = stack.db.jobs.find_one({"_id": job_id})
            measured = {"bytes": path.stat().st_size, "upload_s": upload_s,
                        "converter_s": doc["times"]["done"] - doc["times"]["converting"], **upload, **convert}
            result.setdefault(f"{mb}MB", []).append(measured)
            log(f"c: {json.dumps(measured)}")
    return result


def peak_of(runs: list[dict], proc: str) -> float:
    return max(r[proc]["peak_hwm_mb"] for r in runs)


def figure_d(stack: Stack, steps: list[int], step_seconds: int, out: Path) -> dict:
    result = {"steps": [], "knee_users": None}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LOADTEST_MEDIA_DIR"] = str(MEDIA_DIR / "pool")
    base_p95 = None
    for users in steps:
        folder = out / f"capacity-{users}u"
        log(f"d: {users} users for {step_seconds} s ...")
        code = locust_run.run(users, users, f"{step_seconds}s", stack.gateway, folder,
                              locustfile=HERE / "capacity.py", env=env, timeout=step_seconds + 180)
        rows = locust_run.read_stats(folder)
        with open(folder / "locust_exceptions.csv", newline="") as f:
            exceptions = list(csv.DictReader(f))
        if exceptions:
            raise RuntimeError(f"locust users raised: {exceptions[0]}")
        step = {"users": users, "endpoints": {}, "locust_exit_code": code}
        for row in rows:
            key = row["Name"] if row["Type"] else "Aggregated"
            step["endpoints"][key] = {"type": row["Type"], "requests": int(row["Request Count"]),
                                      "failures": int(row["Failure Count"]), "rps": float(row["Requests/s"]),
                                      "p50": _num(row["50%"]), "p95": _num(row["95%"]), "p99": _num(row["99%"])}
        # The steady-state API mix (on_start's register and the JOB pseudo-requests left out).
        api = {k: v for k, v in step["endpoints"].items() if k in ("/login", "/upload", "/jobs/[id]", "/download", "/jobs")}
        agg = {"rps": sum(v["rps"] for v in api.values()),
               "p95": max((api[k]["p95"] for k in ("/upload", "/jobs/[id]", "/download") if k in api), default=0),
               "requests": sum(v["requests"] for v in api.values()),
               "failures": sum(v["failures"] for v in step["endpoints"].values() if v["type"])}
        step["api"] = agg
        step["error_rate"] = agg["failures"] / max(agg["requests"], 1)
        result["steps"].append(step)
        # Knee: errors above 1 %, p95 of upload/status/download more than doubled vs the first step,
        # or API RPS growing less than 10 % although the users doubled.
        if base_p95 is None:
            base_p95 = max(agg["p95"], 1)
        elif result["knee_users"] is None:
            prev = result["steps"][-2]["api"]
            if step["error_rate"] > 0.01 or agg["p95"] > 2 * base_p95 or agg["rps"] < prev["rps"] * 1.1:
                result["knee_users"] = users
                result["knee_reason"] = (f"error rate {step['error_rate']:.1%}, max p95 of upload/status/download "
                                         f"{agg['p95']:.0f} ms (first step {base_p95:.0f} ms), API RPS "
                                         f"{agg['rps']:.1f} vs {prev['rps']:.1f} at {result['steps'][-2]['users']} users")
        log(f"d: {users} users: {agg}")
    return result


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def figure_e(files: dict, alone_s: float | None) -> dict:
    long = files["long"]
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
    script = (
        "import sys, time\n"
        "try:\n    from moviepy import VideoFileClip\n"
        "except ImportError:\n    from moviepy.editor import VideoFileClip\n"
        "t = time.perf_counter()\n"
        "clip = VideoFileClip(sys.argv[1])\n"
        "clip.audio.write_audiofile(sys.argv[2], bitrate='192k', logger=None)\n"
        "clip.close()\n"
        "print(time.perf_counter() - t)\n")
    log(f"e: moviepy {version} on {long.name} ...")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([str(python), "-c", script, str(long), os.path.join(tmp, "out.mp3")],
                              capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"version": version, "error": done.stderr.strip()[-500:]}
    seconds = float(done.stdout.strip().splitlines()[-1])
    return {"version": version, "seconds": seconds, "ratio": seconds / alone_s if alone_s else None}


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg_start": os.getloadavg(), "python": platform.python_version(),
            "ffmpeg": ffmpeg, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def verdict(value: float | None, target: float, lower_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value <= target if lower_is_better else value >= target
    return "meets" if ok else "**misses**"


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = ["# vid2mp3 benchmarks", "",
             f"Generated by `loadtest/bench.py` on {m['date']}: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, "
             f"{m['ffmpeg']}. Load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_start'])}, "
             f"at end {', '.join(f'{x:.2f}' for x in m.get('loadavg_end', ()))} (shared machine: other test runs were "
             "using the same 2 cores). Local storage is the MongoDB stand-in nx-27017 (SQLite; writes ~20 MB/s), not "
             "MongoDB: storage-bound figures are the stand-in's, not production's.", "",
             "| figure | measured | baseline (same run) | ratio | target | verdict |", "|---|---|---|---|---|---|"]
    a = data.get("a")
    if a:
        lines.append(f"| a. whole pipeline, {a['file']} ({a['bytes'] / 1e6:.0f} MB): upload accepted → MP3 ready | "
                     f"{a['pipeline_s']:.1f} s | ffmpeg alone {a['ffmpeg_alone_s']:.1f} s | {a['pipeline_ratio']:.2f}× | "
                     f"≤ {TARGETS['pipeline']}× | {verdict(a['pipeline_ratio'], TARGETS['pipeline'])} |")
        lines.append(f"| a. converter alone (times.converting → times.done) | {a['converter_s']:.1f} s | "
                     f"ffmpeg alone {a['ffmpeg_alone_s']:.1f} s | {a['converter_ratio']:.2f}× | ≤ {TARGETS['converter']}× | "
                     f"{verdict(a['converter_ratio'], TARGETS['converter'])} |")
    for b in data.get("b", []):
        lines.append(f"| b. short-job throughput, {b['clips']} × {b['clip']} at once, {b['converters']} converter(s) | "
                     f"{b['jobs_per_s']:.2f} jobs/s | ffmpeg alone sequential {b['ffmpeg_sequential_jobs_per_s']:.2f} "
                     f"jobs/s | {b['ratio']:.2f} | ≥ {TARGETS['throughput']} | "
                     f"{verdict(b['ratio'], TARGETS['throughput'], lower_is_better=False)} |")
    c = data.get("c")
    if c and len(c) >= 2:
        small, big = list(c)[0], list(c)[-1]
        for proc in ("gateway worker", "converter"):
            s, g = peak_of(c[small], proc), peak_of(c[big], proc)
            lines.append(f"| c. peak RSS of the {proc} ({'upload' if proc.startswith('gateway') else 'conversion'}) "
                         f"of {big} | {g:.0f} MB | {small}: {s:.0f} MB | +{g - s:.0f} MB | within "
                         f"{TARGETS['memory_mb']} MB | {verdict(g - s, TARGETS['memory_mb'])} |")
    d = data.get("d")
    if d:
        knee = d.get("knee_users")
        lines.append(f"| d. API capacity knee (Locust, {', '.join(str(s['users']) for s in d['steps'])} users) | "
                     f"{'at ' + str(knee) + ' users' if knee else 'not reached'} | | | | "
                     f"{d.get('knee_reason', 'p95 and errors stayed flat')} |")
    e = data.get("e")
    if e:
        if "seconds" in e:
            lines.append(f"| e. seed-style moviepy {e['version']} (VideoFileClip.audio.write_audiofile), same 10-min file | "
                         f"{e['seconds']:.1f} s | ffmpeg alone {a['ffmpeg_alone_s']:.1f} s | "
                         f"{e['ratio']:.2f}× | reference | |" if a else f"| e. moviepy | {e['seconds']:.1f} s | | | | |")
        else:
            lines.append(f"| e. seed-style moviepy | not measured: {e.get('error', '')[:200]} | | | reference | |")
    if a:
        lines += ["", "## Where the time of the 10-minute job goes", "",
                  f"Upload (client → 202, includes the GridFS write of the video): {a['upload_s']:.1f} s "
                  "(before 'upload accepted', so outside the pipeline figure). "
                  f"Queue wait (accepted → claimed by the converter): {a['queue_wait_s']:.2f} s.", "",
                  "| stage (span) | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in a.get("spans_s", {}).items()]
        lines += ["", f"ffmpeg command (same as the converter's): `{a['ffmpeg_command']}`"]
    if c:
        lines += ["", "## Memory detail (MB)", "",
                  "Each size measured twice, alternating; the table row of figure c takes the highest peak per size.", "",
                  "| upload | upload s | gateway worker before | gateway peak (VmHWM) | gateway peak (polled) | "
                  "converter s | converter before | converter peak (VmHWM) | converter peak (polled) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for size, r in [(size, r) for size, runs in c.items() for r in runs]:
            g, v = r["gateway worker"], r["converter"]
            lines.append(f"| {size} | {r['upload_s']:.1f} | {g['baseline_mb']:.0f} | {g['peak_hwm_mb']:.0f} | "
                         f"{g['peak_polled_mb']:.0f} | {r['converter_s']:.1f} | {v['baseline_mb']:.0f} | "
                         f"{v['peak_hwm_mb']:.0f} | {v['peak_polled_mb']:.0f} |")
    if d:
        lines += ["", "## API capacity (Locust, closed model, loadtest/capacity.py; ms)", "",
                  "| users | endpoint | requests | failures | RPS | p50 | p95 | p99 |", "|---|---|---|---|---|---|---|---|"]
        for step in d["steps"]:
            lines.append(f"| {step['users']} | API total (excl. register/JOB) | {step['api']['requests']} | "
                         f"{step['api']['failures']} | {step['api']['rps']:.1f} | | max {step['api']['p95']:.0f} | |")
            for name in ("/login", "/upload", "/jobs/[id]", "/download", "/jobs", "upload→mp3"):
                r = step["endpoints"].get(name)
                if r:
                    lines.append(f"| {step['users']} | {name} | {r['requests']} | {r['failures']} | {r['rps']:.1f} | "
                                 f"{r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} |")
    if data.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c,d,e")
    parser.add_argument("--long-seconds", type=int, default=600)
    parser.add_argument("--clip-seconds", type=int, default=20)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--converters", default="1,2", help="converter counts for figure b")
    parser.add_argument("--big-mb", type=int, default=300, help="large upload of figure c (compared with 50 MB)")
    parser.add_argument("--steps", default="5,10,20,40", help="Locust user counts of figure d")
    parser.add_argument("--step-seconds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=HERE / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=HERE / "benchmarks.json")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    data: dict = {"machine": machine(), "notes": []}
    files = make_media(args.long_seconds, args.clip_seconds, [50, args.big_mb] if "c" in only else [])
    sink = SpanSink()
    stack = Stack(sink)
    log(f"starting the isolated stack in {stack.home} ...")
    try:
        stack.up()
        if "a" in only:
            data["a"] = figure_a(stack, sink, files)
        if "b" in only:
            data["b"] = [figure_b(stack, files, args.clips, int(n)) for n in args.converters.split(",")]
        if "c" in only:
            data["c"] = figure_c(stack, files, [50, args.big_mb])
            data["notes"].append(f"Memory figure c uses a {args.big_mb} MB upload (not 1 GB) against 50 MB.")
        if "d" in only:
            data["d"] = figure_d(stack, [int(x) for x in args.steps.split(",")], args.step_seconds,
                                 Path(tempfile.mkdtemp(prefix="vid2mp3-bench-locust-")))
    finally:
        stack.down()
    if "e" in only:
        data["e"] = figure_e(files, (data.get("a") or {}).get("ffmpeg_alone_s"))
    data["machine"]["loadavg_end"] = os.getloadavg()
    args.json.write_text(json.dumps(data, indent=2, default=str))
    args.out.write_text(markdown(data))
    log(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
