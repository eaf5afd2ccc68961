"""The pool of short test videos the load test uploads, generated once with ffmpeg's lavfi sources.

Standard library only, so it also runs where locust is not installed (e.g. an init container
with ffmpeg that fills a shared folder):  python loadtest/media.py /path/to/folder
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# name: (seconds, size, video args, audio args) -- several lengths, sizes and containers.
POOL: dict[str, tuple[float, str, list[str], list[str]]] = {
    "clip-2s.mp4": (2, "320x240", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    "clip-5s.mp4": (5, "640x360", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    "clip-3s.mkv": (3, "320x240", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
                    ["-c:a", "libvorbis"]),
    "clip-2s.webm": (2, "160x120", ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"],
                     ["-c:a", "libopus"]),
}

_lock = threading.Lock()


def default_dir() -> Path:
    return Path(os.environ.get("LOADTEST_MEDIA_DIR") or Path(tempfile.gettempdir()) / "vid2mp3-loadtest-media")


def ffmpeg_binary() -> str:
    """FFMPEG_BINARY, else ffmpeg on PATH, else the static build of imageio-ffmpeg when installed."""
    explicit = os.environ.get("FFMPEG_BINARY")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # type: ignore

        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        raise RuntimeError("ffmpeg not found: install it (apt-get install ffmpeg or pip install imageio-ffmpeg), "
                           "set FFMPEG_BINARY, or point LOADTEST_MEDIA_DIR at a folder of generated clips") from None


def generate(path: Path, seconds: float, size: str, video_args: list[str], audio_args: list[str],
             video_source: str = "testsrc2", rate: int = 25, extra: list[str] | None = None) -> Path:
    """One lavfi test video with a sine tone; written to a temp name and renamed, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    command = [ffmpeg_binary(), "-v", "error", "-y", "-nostdin",
               "-f", "lavfi", "-i", f"{video_source}=size={size}:rate={rate}:duration={seconds}",
               "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
               *video_args, *audio_args, *(extra or []), "-shortest", str(partial)]
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    os.replace(partial, path)
    return path


def pool(folder: Path | None = None) -> dict[str, bytes]:
    """{file name: content} of every clip of the pool, generating what is missing."""
    folder = folder or default_dir()
    with _lock:
        found = {}
        for name, (seconds, size, video_args, audio_args) in POOL.items():
            path = folder / name
            if not path.exists() or path.stat().st_size == 0:
                generate(path, seconds, size, video_args, audio_args)
            found[name] = path.read_bytes()
    return found


def looks_like_mp3(head: bytes) -> bool:
    """An ID3v2 tag or an MPEG audio frame sync (11 set bits) at the start."""
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default_dir()
    for name, data in pool(target).items():
        print(f"{target / name}  {len(data)} bytes")


def distinct(name: str, data: bytes) -> bytes:
    """`data` made unique with a padding element its container ignores (an MP4 `free` box, a
    Matroska/WebM Void element), so a repeated clip is converted again instead of reusing the
    MP3 of an identical earlier upload (dedup): the load is conversions, not reuses."""
    padding = os.urandom(16)
    if name.endswith(".mp4"):
        return data + (8 + len(padding)).to_bytes(4, "big") + b"free" + padding
    if name.endswith((".mkv", ".webm")):
        return data + b"\xec" + bytes([0x80 | len(padding)]) + padding
    return data
