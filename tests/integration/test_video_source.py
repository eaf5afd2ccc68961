"""The converter's loopback video server over real GridFS: ranges, unknown paths, short reads,
the probe and ffmpeg reading through it, and the local copy of a small video."""
from __future__ import annotations

import io
import os

import pytest
import requests

from services.common.messaging import TransientError
from services.common.storage import files
from services.common.storage.connection import new_id
from services.converter import encode, probe, source
from devkit.media import make_media
from tests.helpers import store_file


@pytest.fixture(scope="module")
def server(stack):
    return source.VideoServer()


CHUNK = 261120  # GridFS's default chunk size
# The server serves any size (the converter copies videos up to source.LOCAL_COPY_MAX_BYTES instead).
LARGE, SMALL = files.CHUNK_WINDOW * CHUNK * 2 + 777, 3 * CHUNK + 777


@pytest.fixture(params=[LARGE, SMALL], ids=["large", "small"])
def stored(stack, request):
    data = os.urandom(request.param)
    file_id = new_id()
    store_file(files.videos(), file_id, "v.bin", io.BytesIO(data), {})
    yield file_id, data
    files.delete_file(files.videos(), file_id)


def test_full_and_range_reads(server, stored):
    file_id, data = stored
    video = server.serve(files.videos(), file_id, len(data))
    try:
        whole = requests.get(video.url, timeout=10)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["Accept-Ranges"] == "bytes"
        for header, expected in [("bytes=0-0", data[:1]), ("bytes=261119-4456449", data[261119:4456450]),
                                 ("bytes=-10", data[-10:]), (f"bytes={len(data) - 5}-", data[-5:]),
                                 (f"bytes=10-{len(data) * 2}", data[10:])]:
            part = requests.get(video.url, headers={"Range": header}, timeout=10)
            assert part.status_code == 206 and part.content == expected, header
        beyond = requests.get(video.url, headers={"Range": f"bytes={len(data)}-"}, timeout=10)
        assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(data)}"
        assert requests.get(video.url, headers={"Range": "bytes=abc-def"}, timeout=10).status_code == 416
        assert video.error is None and video.requests >= 6
    finally:
        server.forget(video)
    # Gone with its job; other paths never existed.
    assert requests.get(video.url, timeout=10).status_code == 404
    assert requests.get(f"http://127.0.0.1:{server.port}/", timeout=10).status_code == 404


def test_a_storage_failure_mid_read_is_recorded(server, stored):
    """A short body must never pass for the whole video: the converter turns this into a retry."""
    file_id, data = stored
    video = server.serve(files.videos(), file_id, len(data))
    try:
        chunks = files.videos().chunks
        chunks.delete_many({"files_id": file_id, "n": {"$gte": len(data) // CHUNK // 2}})  # loses its tail
        body = b""
        try:
            with requests.get(video.url, stream=True, timeout=10) as response:
                for block in response.iter_content(65536):
                    body += block
        except requests.RequestException:
            pass  # the connection is cut short, as ffmpeg would see it
        assert len(body) < len(data)
        assert video.error is not None
    finally:
        server.forget(video)


@pytest.mark.parametrize("stored", [SMALL], ids=["small"], indirect=True)
def test_a_small_video_is_copied_whole_or_not_at_all(stored, tmp_path):
    file_id, data = stored
    assert len(data) <= source.LOCAL_COPY_MAX_BYTES < LARGE
    copy = source.LocalCopy(files.videos(), files.file_info(files.videos(), file_id), str(tmp_path))
    assert open(copy.url, "rb").read() == data and copy.bytes_sent == len(data) and copy.error is None
    files.videos().chunks.delete_many({"files_id": file_id, "n": {"$gte": 1}})  # storage loses its tail
    (tmp_path / "again").mkdir()
    with pytest.raises(TransientError) as failed:
        source.LocalCopy(files.videos(), files.file_info(files.videos(), file_id), str(tmp_path / "again"))
    assert "CorruptGridFile" in str(failed.value)  # pymongo notices the missing chunk


def test_the_probe_and_ffmpeg_read_through_it_with_the_index_at_the_end(server, tmp_path):
    clip = make_media(tmp_path / "moov-at-end.mp4", seconds=3)  # plain ffmpeg output: moov after mdat
    file_id = new_id()
    store_file(files.videos(), file_id, "v.mp4", io.BytesIO(clip.read_bytes()), {})
    video = server.serve(files.videos(), file_id, clip.stat().st_size)
    try:
        info = probe.probe(video.url)
        assert info.audio_streams == 1 and abs(info.duration - 3) < 0.2
        out = io.BytesIO()
        assert encode.convert(video.url, info, out, str(tmp_path / "log")) > 10000
        assert out.getvalue()[:3] == b"ID3" or out.getvalue()[0] == 0xFF
        assert video.error is None and video.requests >= 2  # ffmpeg seeks to the index with a range
    finally:
        server.forget(video)
        files.delete_file(files.videos(), file_id)


def test_inputs_are_limited_to_their_own_protocol_and_real_containers(tmp_path):
    assert probe.input_options("http://127.0.0.1:1/x")["protocol_whitelist"] == "http,tcp"
    assert probe.input_options(str(tmp_path / "x.mp4"))["protocol_whitelist"] == "file"
    playlist = tmp_path / "list.mp4"
    playlist.write_text(f"#EXTM3U\n#EXTINF:1,\n{tmp_path / 'secret.wav'}\n")
    make_media(tmp_path / "secret.wav", seconds=1, video=None)
    with pytest.raises(Exception, match="not a video or audio file"):
        probe.probe(str(playlist))
