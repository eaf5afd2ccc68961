"""Per-user quotas: refused with 429 quota_exceeded before the body is stored, enforced again at the end,
right with two gateway replicas racing, admins exempt; GET /me shows usage and limits."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading

import pytest
import requests
from urllib3 import encode_multipart_formdata

from devkit.client import Client
from devkit.media import make_media
from tests.helpers import stored_job
from devkit.stack import ROOT, private_gateways
from services.gateway import quotas

LIMITS = {"USER_MAX_ACTIVE_JOBS": "3", "USER_MAX_STORED_BYTES": "400000", "USER_MAX_UPLOADS_PER_DAY": "3"}


@pytest.fixture(scope="module")
def gateways(stack, tmp_path_factory):
    """Two gateway replicas of our own on the test stack, with small quotas."""
    env = dict(os.environ, AUTH_URL=stack["auth"])
    with private_gateways(env, LIMITS, tmp_path_factory.mktemp("quota"), 2) as started:
        yield [base for base, _ in started]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("quota-media") / "clip.mp4", seconds=1)


def _user(stack) -> tuple[Client, str]:
    user = Client(stack["gateway"]).signed_up()
    claims = json.loads(base64.urlsafe_b64decode(user.token.split(".")[1] + "=="))
    return user, claims["sub"]


def _post(base: str, user: Client, media, **kwargs) -> requests.Response:
    with open(media, "rb") as f:
        return requests.post(f"{base}/upload", headers=user.auth, files={"file": ("clip.mp4", f)}, timeout=60, **kwargs)


def _refused(response: requests.Response, limit_text: str) -> str:
    assert response.status_code == 429, response.text
    assert response.headers["Content-Type"] == "application/problem+json" and int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and limit_text in error["message"], error
    return error["message"]


def _uploads_of(owner: str) -> list[dict]:
    from services.common.storage import uploads as upload_records

    return list(upload_records.collection().find({"owner": owner}))


def test_too_many_unfinished_jobs_is_refused_before_the_body_with_retry_after(gateways, stack, media):
    user, sub = _user(stack)
    for _ in range(3):
        stored_job(owner=sub)  # queued jobs no converter will take: they stay unfinished
    answer = _post(gateways[0], user, media)
    message = _refused(answer, "USER_MAX_ACTIVE_JOBS")
    assert "3 of 3" in message and answer.headers["Retry-After"] == str(quotas.ACTIVE_RETRY_AFTER)
    assert answer.headers["RateLimit-Policy"] == \
        '"active_jobs";q=3;qu="concurrent-requests", "uploads_per_day";q=3;w=86400'
    assert answer.headers["RateLimit"].startswith('"active_jobs";r=0, "uploads_per_day";r=3;t=0')
    assert _uploads_of(sub) == []  # nothing reserved, nothing stored
    me = requests.get(f"{gateways[0]}/me", headers=user.auth, timeout=10).json()
    assert me["email"] == user.email and me["usage"]["active_jobs"] == 3 and me["limits"]["active_jobs"] == 3


def test_declared_length_beyond_the_storage_quota_is_refused_with_retry_after(gateways, stack, media):
    from services.common.storage import uploads as upload_records
    from services.common.storage.connection import new_id

    user, sub = _user(stack)
    upload_records.record_upload(new_id(), sub, 390000)  # an upload in progress elsewhere counts at its length
    answer = _post(gateways[1], user, media)
    message = _refused(answer, "USER_MAX_STORED_BYTES")
    assert "390000 bytes stored" in message and answer.headers["Retry-After"] == str(quotas.STORED_RETRY_AFTER)
    assert len(_uploads_of(sub)) == 1
    me = requests.get(f"{gateways[1]}/me", headers=user.auth, timeout=10).json()
    assert me["usage"]["stored_bytes"] == 390000 and me["usage"]["active_jobs"] == 1


def test_an_undeclared_length_is_enforced_at_the_end_and_the_video_removed(gateways, stack, media):
    from services.common.storage import files, job_records
    from services.common.storage import uploads as upload_records
    from services.common.storage.connection import new_id

    user, sub = _user(stack)
    upload_records.record_upload(new_id(), sub, 400000 - media.stat().st_size + 10)
    body, content_type = encode_multipart_formdata({"file": ("clip.mp4", media.read_bytes())})
    videos_before = {doc["_id"] for doc in files.videos().files.find()}
    answer = requests.post(f"{gateways[0]}/upload", data=iter([body]), timeout=60,  # chunked: no Content-Length
                           headers={**user.auth, "Content-Type": content_type})
    _refused(answer, "USER_MAX_STORED_BYTES")
    assert {doc["_id"] for doc in files.videos().files.find()} == videos_before
    assert len(_uploads_of(sub)) == 1 and job_records.find_job({"owner": sub}) is None


def test_daily_uploads_are_counted_exactly_across_two_racing_replicas(gateways, stack, media):
    user, _ = _user(stack)
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda i=i: answers.append(_post(gateways[i % 2], user, media)))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    codes = sorted(a.status_code for a in answers)
    # The first three admitted hold the active-jobs (3) and the day's (3) places: the other five are refused.
    assert codes == [202] * 3 + [429] * 5, [a.text for a in answers]
    me = requests.get(f"{gateways[1]}/me", headers=user.auth, timeout=10).json()
    assert me["usage"]["uploads_24h"] == 3


def test_the_day_limit_answers_retry_after_until_the_oldest_upload_leaves_the_window(gateways, stack, media):
    user, sub = _user(stack)
    admitted = [_post(gateways[0], user, media) for _ in range(3)]
    assert [a.status_code for a in admitted] == [202] * 3
    # the RateLimit headers count both limits down (draft-ietf-httpapi-ratelimit-headers)
    states = [re.fullmatch(r'"active_jobs";r=(\d+), "uploads_per_day";r=(\d+);t=(\d+)', a.headers["RateLimit"])
              for a in admitted]
    assert [int(m[2]) for m in states] == [2, 1, 0], [a.headers for a in admitted]
    # an earlier job may have been converted already (a 1 s clip takes a fraction of a second): its place is free
    assert all(2 - n <= int(m[1]) <= 2 for n, m in enumerate(states)), [a.headers for a in admitted]
    assert all(86000 < int(m[3]) <= 86401 for m in states)
    from services.common.storage import job_records

    job_records.collection().update_many({"owner": sub}, {"$set": {"status": "done"}})  # active jobs out of the way
    answer = _post(gateways[1], user, media)
    _refused(answer, "USER_MAX_UPLOADS_PER_DAY")
    assert 86000 < int(answer.headers["Retry-After"]) <= 86401
    assert answer.headers["RateLimit"].endswith(f'"uploads_per_day";r=0;t={answer.headers["Retry-After"]}')


def test_admins_are_exempt_and_me_needs_a_token(gateways, stack, media):
    user, sub = _user(stack)
    subprocess.run([sys.executable, "-m", "services.auth.cli", "set-admin", user.email], cwd=ROOT, check=True,
                   capture_output=True)
    user.login()
    for _ in range(3):
        stored_job(owner=sub)
    assert _post(gateways[0], user, media).status_code == 202
    me = requests.get(f"{gateways[0]}/me", headers=user.auth, timeout=10).json()
    assert me["admin"] is True and me["limits"] is None and me["usage"]["active_jobs"] >= 3
    assert requests.get(f"{gateways[0]}/me", timeout=10).status_code == 401
    forged = {"Authorization": "Bearer " + user.token[:-4] + "AAAA"}
    assert requests.get(f"{gateways[0]}/me", headers=forged, timeout=10).status_code == 401


def test_requests_refused_for_their_form_cost_no_quota(gateways, stack):
    user, _ = _user(stack)
    for headers, body in (({"Content-Type": "application/json"}, b"{}"),  # 415
                          ({"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(2**40)}, b"")):
        answer = requests.post(f"{gateways[0]}/upload", data=body, headers={**user.auth, **headers}, timeout=10)
        assert answer.status_code in (413, 415), answer.text
    assert requests.get(f"{gateways[0]}/me", headers=user.auth, timeout=10).json()["usage"] == {
        "active_jobs": 0, "stored_bytes": 0, "uploads_24h": 0}
