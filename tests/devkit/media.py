"""Real media made with ffmpeg's lavfi sources, and the facts ffprobe reads back from a file."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path


def make_media(path: Path, seconds: float = 3, video: str | None = "testsrc=size=320x240:rate=25",
               audio: str | None = "sine=frequency=440", extra: list[str] | None = None) -> Path:
    """Generate a real media file with ffmpeg's lavfi sources."""
    args = ["ffmpeg", "-v", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"{video}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"{audio}:duration={seconds}"]
    if video and path.suffix in (".mp4", ".mov", ".mkv"):
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio and path.suffix in (".mp4", ".mov", ".mkv"):
        args += ["-c:a", "aac"]
    args += (extra or []) + [str(path)]
    subprocess.run(args, check=True)
    return path


def unique_mp4(data: bytes) -> bytes:
    """An MP4 made unique with a `free` box its players ignore: an upload of it converts again
    instead of reusing the MP3 of an identical earlier upload (dedup)."""
    return data + (24).to_bytes(4, "big") + b"free" + uuid.uuid4().bytes


def duration_of(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
                          "-of", "json", str(path)], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)["format"]["duration"])


def codec_of(path: Path) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"][0]["codec_name"]


def silent_flac(path: Path, seconds: float, claimed_seconds: float | None = None, rate: int = 48000) -> Path:
    """Stereo silence as FLAC in the largest frames (an hour is ~53 KB, and ~691 MB as WAV). With
    `claimed_seconds`, its STREAMINFO header says that length instead: the probe believes the header,
    ffmpeg decodes every frame (a file whose duration lies)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=stereo",
                    "-t", str(seconds), "-c:a", "flac", "-frame_size", "65535", str(path)], check=True)
    if claimed_seconds is not None:
        data = bytearray(path.read_bytes())
        # STREAMINFO follows "fLaC" and its 4-byte block header; its bytes 10-17 end in the 36-bit sample count.
        packed = int.from_bytes(data[18:26], "big")
        packed = (packed >> 36 << 36) | round(claimed_seconds * rate)
        data[18:26] = packed.to_bytes(8, "big")
        path.write_bytes(bytes(data))
    return path
