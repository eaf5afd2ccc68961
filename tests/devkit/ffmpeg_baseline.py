"""The benchmark's baseline: ffmpeg alone converting a local file with the converter's default encoder
settings (the default format's encoder and muxer, at MP3_BITRATE), and nothing of the service around it.

Built here from the settings the converter reads, not from the converter's command builder, so the
baseline stays a plain ffmpeg run whatever shape the converter's code takes; the binary is the
converter's own (command.ffmpeg_executable).
"""
from __future__ import annotations

import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from services.common import config
from services.common.options import Options
from services.converter.command import ffmpeg_executable


# What every result also gets (DESIGN: a loudness report and a waveform per output), as ffmpeg alone makes it
# at its cheapest: in the same run, a second output of the decoded audio in a filtergraph of its own (a thread
# beside the encoder's), EBU R128 loudness with the true peak, and the 8-bit mono PCM a waveform is drawn from.
ANALYSIS = ["-map", "0:a:0", "-af", "ebur128=peak=true", "-ac", "1", "-c:a", "pcm_u8", "-f", "u8", "-y", "/dev/null"]


def command(source: Path, target: Path, analysed: bool = False) -> list[str]:
    """The first audio stream of `source` encoded as a job without options is, into `target`; `analysed`:
    with the result's analysis made in the same run (ANALYSIS)."""
    spec = Options().spec
    return [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(source),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-acodec", spec.encoder, "-b:a", config.env("MP3_BITRATE"),
            "-f", spec.muxer, "-y", str(target), *(ANALYSIS if analysed else [])]


def seconds(source: Path, runs: int = 3, analysed: bool = False) -> dict:
    """Seconds ffmpeg alone takes on `source` (median of `runs`), the CPU seconds (user + system) it used,
    and the command it ran; `analysed`: making the analysis too (command)."""
    times, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        run = command(source, Path(tmp) / f"out.{Options().spec.name}", analysed)
        for _ in range(runs):
            before = _children_cpu()
            started = time.perf_counter()
            subprocess.run(run, check=True, stdin=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
            cpu.append(_children_cpu() - before)
    return {"median_s": statistics.median(times), "runs_s": times, "cpu_median_s": statistics.median(cpu),
            "cpu_runs_s": cpu, "command": " ".join(run)}


def _children_cpu() -> float:
    """CPU seconds of this process's children that ended (the ffmpeg runs: nothing else ends meanwhile)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
