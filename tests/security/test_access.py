"""Nobody reads or changes what is not theirs: another user's ids answer 404 everywhere, listings are
private, and ids cannot be guessed."""
from __future__ import annotations

import re

import requests

from devkit.client import Client
from devkit.media import make_media, unique_mp4


def test_other_users_ids_are_404_everywhere(stack, tmp_path):
    owner = Client(stack["gateway"]).signed_up()
    intruder = Client(stack["gateway"]).signed_up()
    made = make_media(tmp_path / "mine.mp4", seconds=1).read_bytes()
    videos = [tmp_path / f"mine-{n}.mp4" for n in range(3)]
    for video in videos:  # bytes of its own each: once the first is done, dedup would share its files
        video.write_bytes(unique_mp4(made))
    job_ids = [owner.upload(video).json()["job_id"] for video in videos]
    jobs = [owner.wait_job(j, 60) for j in job_ids]
    mp3_ids = [j["mp3_id"] for j in jobs]
    assert all(mp3_ids)
    gw = stack["gateway"]
    for job_id, mp3_id in zip(job_ids, mp3_ids, strict=True):
        assert intruder.job(job_id).status_code == 404
        for headers in ({}, {"Range": "bytes=0-10"}):
            response = intruder.download(mp3_id, **headers)
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        # The job id is not a file id, and the video behind a job is never downloadable.
        assert owner.download(job_id).status_code == 404
        # The not-found answers are identical for "exists but not yours" and "does not exist" (but for
        # `instance`, the path the client asked for).
        theirs, nobodys = intruder.job(job_id).json(), intruder.job("0" * 24).json()
        assert (theirs.pop("instance"), nobodys.pop("instance")) == (f"/jobs/{job_id}", f"/jobs/{'0' * 24}")
        assert theirs == nobodys
        # No write endpoints on jobs.
        for method in ("put", "patch", "delete"):
            answer = getattr(requests, method)(f"{gw}/jobs/{job_id}", headers=intruder.auth, timeout=10)
            assert answer.status_code in (404, 405)
    for status in (None, "done", "queued", "failed"):
        params = {"limit": 100, **({"status": status} if status else {})}
        listed = requests.get(f"{gw}/jobs", params=params, headers=intruder.auth, timeout=10).json()["jobs"]
        assert not {j["job_id"] for j in listed} & set(job_ids)
    mine = requests.get(f"{gw}/jobs", params={"limit": 100}, headers=owner.auth, timeout=10).json()["jobs"]
    assert {j["job_id"] for j in mine} == set(job_ids)
    # Ids: 24 hex characters, random (no counter or clock relation between consecutive ones).
    ids = job_ids + mp3_ids
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids), ids
    values = [int(i, 16) for i in job_ids]
    gaps = [abs(b - a) for a, b in zip(values, values[1:], strict=False)]
    assert all(gap > 2 ** 64 for gap in gaps), "consecutive job ids are close together: guessable"
    assert len({i[:8] for i in ids}) == len(ids), "ids share a prefix (timestamp-like)"
