"""The result's size bound on real files with real ffmpeg: every format's real output stays under the
predicted bound (noise, the worst case of the lossy encoders), and an output growing past its limit
stops ffmpeg on both paths (stdout into the sink, and the work-folder file) with nothing kept past it."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from services.common.options import parse
from services.converter import encode, plan, probe
from services.converter.output_size import COVER_MAX_BYTES
from devkit.media import make_media, silent_flac

NOISE = "aevalsrc=exprs='2*random(0)-1|2*random(1)-1':s=48000"  # two independent channels: no joint-stereo savings


@pytest.fixture(scope="module")
def noise(tmp_path_factory) -> Path:
    """20 s of full-scale noise with a video (for the cover) in Matroska, its audio as PCM (no copy)."""
    return make_media(tmp_path_factory.mktemp("noise") / "noise.mkv", seconds=20, video="testsrc=size=320x240:rate=5",
                      audio=NOISE, extra=["-c:a", "pcm_s16le"])


@pytest.mark.parametrize("fields", [
    {}, {"bitrate": "320k"}, {"quality": "0"}, {"quality": "0", "sample_rate": "22050"}, {"cover": "true"},
    {"format": "m4a", "bitrate": "32k"}, {"format": "m4a", "bitrate": "320k"}, {"format": "m4a"},
    {"format": "opus"}, {"format": "opus", "bitrate": "256k"}, {"format": "opus", "bitrate": "16k"},
    {"format": "flac"}, {"format": "flac", "channels": "1", "start": "2", "end": "7"}, {"format": "wav"},
], ids=lambda fields: ",".join(f"{k}={v}" for k, v in fields.items()) or "default")
def test_real_outputs_stay_under_their_predicted_bound(noise, tmp_path, fields):
    info, options = probe.probe(str(noise)), parse(fields)
    sink = io.BytesIO()
    written = encode.convert(str(noise), info, sink, str(tmp_path / "ffmpeg.log"), options=options)
    bound = plan.output_bound(info, options)
    assert written <= bound, f"{fields}: {written} bytes written, bound {bound}"
    audio_bound = bound - (COVER_MAX_BYTES if options.cover else 0)  # a frame of testsrc is far under the budget
    assert written > audio_bound / 4 or options.format == "flac", f"{fields}: bound {bound} is loose ({written})"


@pytest.fixture(scope="module")
def liar(tmp_path_factory) -> Path:
    """Ten minutes of silence whose header says 1 s: ~115 MB as WAV from a ~10 KB file."""
    return silent_flac(tmp_path_factory.mktemp("liar") / "liar.flac", 600, claimed_seconds=1)


@pytest.mark.parametrize("fields", [{"format": "wav"}, {"bitrate": "320k"}], ids=["work-folder", "stdout"])
def test_an_output_growing_past_its_limit_stops_ffmpeg_with_nothing_kept_past_it(liar, tmp_path, fields):
    info, options = probe.probe(str(liar)), parse(fields)
    assert info.duration == pytest.approx(1)  # the probe believes the header
    limit = 2 * plan.output_bound(info, options)
    sink = io.BytesIO()
    with pytest.raises(encode.OutputTooLarge) as stopped:
        encode.convert(str(liar), info, sink, str(tmp_path / "ffmpeg.log"), options=options, max_bytes=limit)
    assert stopped.value.limit == limit and len(sink.getvalue()) <= limit
    # The work-folder copy stops at the limit too: ffmpeg's own -fs, at most one packet past it.
    output = tmp_path / f"output.{options.spec.extension}"
    assert not output.exists() or os.path.getsize(output) <= limit + 300_000


def _converting(owner: str, worker: str, **fields):
    """A job of `owner` that `worker` holds, as after its claim."""
    from services.common.storage import job_records
    from tests.helpers import stored_job

    job = stored_job(owner=owner, **fields)
    return job_records.claim_job(job.id, worker, 60)


def test_the_allowance_is_reserved_in_the_quota_while_the_job_converts(stack):
    from services.common import config, quota_usage
    from services.common.jobs import Status
    from services.common.messaging import PermanentError
    from services.common.storage import job_records
    from services.common.storage import uploads as upload_records
    from services.common.storage.connection import new_id
    from services.converter import output_limit

    owner, quota = f"owner-{new_id()}", config.env_int("USER_MAX_STORED_BYTES")
    upload_records.record_upload(new_id(), owner, quota - 10_000_000)  # 10 MB left
    first, second = _converting(owner, "w1"), _converting(owner, "w2")
    allowance = output_limit.admit(first, "w1", 6_000_000, 30)
    assert (allowance.limit, allowance.cause) == (10_000_000, output_limit.QUOTA)  # twice 6 MB passes what is left
    assert job_records.get_job(first.id).output_reserved == 10_000_000
    assert quota_usage.usage(owner).stored_bytes == quota  # full, not past
    with pytest.raises(PermanentError, match="more than the 0.0 MB left in your storage quota"):
        output_limit.admit(second, "w2", 6_000_000, 30)  # a second conversion cannot take the same room
    assert output_limit.admit(first, "w1", 6_000_000, 30).limit == 10_000_000  # its own reservation is its own
    job_records.finish_job(first.id, "w1", Status.FAILED, reason="x")
    assert output_limit.admit(second, "w2", 4_000_000, 20).limit == 8_000_000  # the room is back once it ended
    # An admin's upload is held to MAX_OUTPUT_BYTES only, and reserves nothing.
    admins = _converting(owner, "w3", quota_exempt=True)
    assert output_limit.admit(admins, "w3", 100_000_000, 600).limit == min(200_000_000,
                                                                           config.env_int("MAX_OUTPUT_BYTES"))
    assert job_records.get_job(admins.id).output_reserved is None
