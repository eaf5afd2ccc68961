"""The loudness report and the waveform of a real job (issue 23), checked by readers not our own: each
result downloaded and measured with pyloudnorm (an independent ITU-R BS.1770 meter), its length read
by ffprobe, its waveform fetched through the signed link (no token) and parsed as audiowaveform JSON v2.
"""
from __future__ import annotations

import json
import subprocess

import numpy
import pyloudnorm
import pytest
import requests

from devkit.client import Client
from devkit.media import duration_of, make_media, unique_mp4

RATE = 48000
OUTPUTS = [{"format": "mp3", "bitrate": "192k"}, {"format": "opus", "bitrate": "64k"}, {"format": "flac"}]
# a swell: quiet for 4 s, then 6 s 20 dB louder, so the report's range and the peaks have something to show
SWELL = "aevalsrc=exprs='(0.05+0.45*gte(t\\,4))*sin(440*2*PI*t)':s=48000"


@pytest.fixture(scope="module")
def done_job(stack, tmp_path_factory):
    user = Client(stack["gateway"]).signed_up()
    video = make_media(tmp_path_factory.mktemp("report") / "swell.mp4", seconds=10, audio=SWELL)
    video.write_bytes(unique_mp4(video.read_bytes()))
    with open(video, "rb") as f:
        answer = requests.post(f"{user.base}/upload", headers=user.auth, files={"file": (video.name, f)},
                               data={"normalize": "true", "outputs": json.dumps(OUTPUTS)}, timeout=60)
    assert answer.status_code == 202, answer.text
    job = user.wait_job(answer.json()["job_id"], timeout=180)
    assert job["status"] == "done", job
    return user, job


def pyloudnorm_lufs(path) -> float:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ar", str(RATE), "-ac", "2",
                          "-f", "f32le", "-c:a", "pcm_f32le", "-"], check=True, capture_output=True).stdout
    return pyloudnorm.Meter(RATE).integrated_loudness(numpy.frombuffer(raw, "<f4").reshape(-1, 2).astype(float))


def test_each_output_reports_the_loudness_an_independent_meter_measures(done_job, tmp_path):
    user, job = done_job
    for output in job["outputs"]:
        got = requests.get(user.base + output["download_url"], headers=user.auth, timeout=30)
        saved = tmp_path / output["filename"]
        saved.write_bytes(got.content)
        report = output["loudness"]
        assert report["integrated_lufs"] == pytest.approx(pyloudnorm_lufs(saved), abs=0.5), output
        assert report["true_peak_dbtp"] <= 0 and report["range_lu"] > 3, report
    assert job["loudness"]["output"] == job["outputs"][0]["loudness"]
    source = job["loudness"]["source"]  # normalisation ran: the source's loudness before it
    assert source is not None and source["range_lu"] > 3, source
    assert source["integrated_lufs"] != pytest.approx(report["integrated_lufs"], abs=1), (source, report)


def test_each_output_has_a_waveform_as_long_as_its_audio(done_job, tmp_path):
    user, job = done_job
    for output in job["outputs"]:
        peaks = requests.get(output["waveform_link"], timeout=30)  # the signed link: no token
        assert peaks.status_code == 200 and peaks.headers["Content-Type"].startswith("application/json")
        wave = peaks.json()
        assert (wave["version"], wave["bits"], wave["channels"]) == (2, 8, 1), {k: wave[k] for k in wave if k != "data"}
        assert len(wave["data"]) == 2 * wave["length"] and all(-128 <= v <= 127 for v in wave["data"])
        saved = tmp_path / output["filename"]
        saved.write_bytes(requests.get(output["link"], timeout=30).content)
        pixel = wave["samples_per_pixel"] / wave["sample_rate"]
        assert wave["length"] * pixel == pytest.approx(duration_of(saved), abs=pixel + 0.05), output["filename"]
        # the quiet first 4 s peak far lower than the loud last 6 s
        highs = wave["data"][1::2]
        quiet, loud = highs[: int(3.5 / pixel)], highs[int(4.5 / pixel):]
        assert max(quiet) * 4 < max(loud), (max(quiet), max(loud))
        with_token = requests.get(user.base + output["waveform_url"], headers=user.auth, timeout=30)
        assert with_token.content == peaks.content
