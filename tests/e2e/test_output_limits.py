"""A result's size is bounded before it is produced (issue 20, point 7), through the whole stack: a tiny
upload that decodes to a large WAV fails with a reason when its predicted size passes the owner's
storage quota left or MAX_OUTPUT_BYTES (300 MB on the test stack), and a file whose header lies about
its length is stopped while ffmpeg runs. Either way the owner gets the failure email, and nothing is
stored past the quota."""
from __future__ import annotations

import base64
import json

import pytest
import requests

from services.common import config
from services.common.storage import files
from services.common.storage import uploads as upload_records
from services.common.storage.connection import new_id
from devkit.client import Client
from devkit.media import silent_flac
from devkit.metrics import metric_value
from tests.helpers import wait_mail


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("output-limits")
    return {"hour": silent_flac(folder / "hour.flac", 3600),  # ~53 KB, 691 MB as WAV
            "ten_minutes": silent_flac(folder / "ten.flac", 600),  # 115 MB as WAV
            "claims_1s": silent_flac(folder / "claims-1s.flac", 600, claimed_seconds=1),
            "claims_30s": silent_flac(folder / "claims-30s.flac", 600, claimed_seconds=30)}


def _user_with_room(stack, room: int) -> Client:
    """A new user whose storage quota has `room` bytes left (an upload in progress elsewhere holds the rest)."""
    user = Client(stack["gateway"]).signed_up()
    sub = json.loads(base64.urlsafe_b64decode(user.token.split(".")[1] + "=="))["sub"]
    upload_records.record_upload(new_id(), sub, config.env_int("USER_MAX_STORED_BYTES") - room)
    return user


def _failed(stack, user: Client, path, options: dict) -> dict:
    """Upload, wait for the job's end: it failed, its email carries the reason, no result was stored."""
    response = user.upload(path, options=options)
    assert response.status_code == 202, response.text
    job = user.wait_job(response.json()["job_id"], timeout=120)
    assert job["status"] == "failed" and job["mp3_id"] is None, job
    assert files.results().files.find_one({"metadata.job_id": job["job_id"]}) is None
    mails = wait_mail(stack["mail"], job["job_id"])
    assert len(mails) == 1 and job["reason"] in mails[0].get_content()
    return job


def _within_quota(user: Client) -> None:
    me = requests.get(f"{user.base}/me", headers=user.auth, timeout=10).json()
    assert me["usage"]["stored_bytes"] <= me["limits"]["stored_bytes"], me


def _counted(stack, outcome: str, limit: str) -> float:
    return metric_value(stack["metrics"]["converter"], "converter_output_limited_total", outcome=outcome,
                        limit=limit) or 0


def test_a_result_predicted_past_the_quota_left_is_refused(stack, media):
    user = _user_with_room(stack, 20_000_000)
    before = _counted(stack, "refused", "storage_quota")
    job = _failed(stack, user, media["ten_minutes"], {"format": "wav"})
    assert job["reason"].startswith("the result would be up to about 116 MB, more than the 20 MB left in your "
                                    "storage quota; delete jobs you no longer need"), job["reason"]
    _within_quota(user)
    assert _counted(stack, "refused", "storage_quota") == before + 1


def test_a_result_predicted_past_max_output_bytes_is_refused(stack, media):
    user = Client(stack["gateway"]).signed_up()
    job = _failed(stack, user, media["hour"], {"format": "wav"})
    assert job["reason"].startswith("the result would be up to about 695 MB, more than the 300 MB one result may "
                                    "take (MAX_OUTPUT_BYTES)"), job["reason"]


def test_a_header_that_lies_is_stopped_at_twice_its_prediction_while_streaming(stack, media):
    user = Client(stack["gateway"]).signed_up()
    before = _counted(stack, "stopped", "bound")
    job = _failed(stack, user, media["claims_1s"], {"bitrate": "320k"})  # mp3 CBR: ffmpeg's stdout into storage
    assert job["reason"] == ("the file decodes to more audio than the 1 s its header gives: the result grew past "
                             "0.2 MB, so the conversion was stopped"), job["reason"]
    assert _counted(stack, "stopped", "bound") == before + 1


def test_a_header_that_lies_is_stopped_at_the_quota_left_in_the_work_folder(stack, media):
    user = _user_with_room(stack, 8_000_000)  # the prediction (5.9 MB) fits, ten minutes (115 MB) not
    job = _failed(stack, user, media["claims_30s"], {"format": "wav"})  # WAV: written to the work folder first
    assert job["reason"] == ("the file decodes to more audio than the 30 s its header gives: the result grew past "
                             "the 8.0 MB left in your storage quota, so the conversion was stopped"), job["reason"]
    _within_quota(user)
