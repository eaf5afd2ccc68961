"""loadtest/conversion_overhead.py on a real 20 s video: the converter reads ffmpeg's outputs in whole
blocks (one read per encoded frame once cost more CPU than the rest of a short job's Python)."""
from __future__ import annotations

import math

# loadtest/ is on pytest's pythonpath (pyproject.toml)
import conversion_overhead as tool
from devkit.media import make_media
from services.common.storage import files
from services.converter import analysis


def test_ffmpegs_outputs_are_read_in_whole_blocks(tmp_path, capsys):
    video = make_media(tmp_path / "talk.mp4", seconds=20, video="testsrc=size=160x120:rate=5")
    run = tool.one_run(str(video))
    result_bytes = 20 * 192_000 // 8  # 20 s of MP3 at the default 192 kb/s, give or take a frame
    pcm_bytes = 20 * 44_100  # the waveform's 8-bit mono samples at the source's rate
    assert run["result_reads"] <= math.ceil(result_bytes * 1.05 / files.CHUNK_SIZE) + 1, run
    assert run["pcm_reads"] <= math.ceil(pcm_bytes * 1.05 / analysis.PIPE_BLOCK) + 1, run
    assert 0 < run["python_cpu_s"] < run["ffmpeg_cpu_s"], run
    assert tool.main([str(video), "--runs", "1"]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith("| talk.mp4 | ") and row.endswith(" blocks |"), row
