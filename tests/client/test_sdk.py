"""The Python SDK against the stack: typed jobs, live events and the polling fallback, cancel, delete,
downloads, and the webhook helper on a real signed delivery."""
from __future__ import annotations

import base64
import json

import pytest
import requests
from vid2mp3 import ApiError, AuthError, Client, InvalidWebhook, Job, JobFailed, verify_webhook
from vid2mp3.config import UrlStore

from devkit.media import codec_of
from devkit.metrics import metric_value
from devkit.receiver import Receiver
from tests.helpers import stored_job


@pytest.fixture
def sdk(stack, user, tmp_path) -> Client:
    return Client(stack["gateway"], token=user.token, url_store=UrlStore(tmp_path / "uploads.json"))


def test_upload_wait_download_with_typed_results(sdk, videos, tmp_path):
    upload = sdk.upload(videos[0], {"bitrate": "128k", "normalize": False})
    seen: list[Job] = []
    job = sdk.wait(upload.job_id, on_update=seen.append)
    assert isinstance(job, Job) and job.done and job.final and job.options["bitrate"] == "128k"
    assert seen[-1] == job and all(isinstance(view, Job) for view in seen)
    saved = sdk.download(job, tmp_path)  # a folder: the server's name for the result
    assert saved == tmp_path / f"{videos[0].stem}.mp3" and codec_of(saved) == "mp3"
    assert [j.id for j in sdk.jobs()] == [job.id]
    assert [j.id for j in sdk.jobs(status="failed")] == []
    assert list(sdk.events(job))[-1].status == "done"  # a final job's stream: its view, then the end


def test_convert_is_upload_wait_download(sdk, videos, tmp_path):
    saved = sdk.convert(videos[1], out=tmp_path, options={"format": "m4a"})
    assert saved == tmp_path / f"{videos[1].stem}.m4a" and codec_of(saved) == "aac"
    newest = sdk.upload(videos[0]).job_id  # a second job: two pages of one
    listed = [job.id for job in sdk.all_jobs(page_size=1)]
    assert len(listed) == 2 and listed[0] == newest and len(set(listed)) == 2


def test_wait_polls_when_the_server_has_no_event_stream_for_us(sdk, user, stack, videos):
    """EVENT_STREAMS_PER_USER (2) streams held open elsewhere: the SDK's stream is refused (429) and it polls."""
    claims = json.loads(base64.urlsafe_b64decode(user.token.split(".")[1] + "=="))
    never_ends = stored_job(owner=claims["sub"]).id  # queued, and no converter will ever take it
    refused_before = metric_value(stack["metrics"]["gateway"], "gateway_event_streams_user_limited_total") or 0
    held = [requests.get(f"{stack['gateway']}/jobs/{never_ends}/events", headers=user.auth, stream=True, timeout=60)
            for _ in range(2)]
    job_id = sdk.upload(videos[0], {"channels": "1"}).job_id
    try:
        assert all(response.status_code == 200 for response in held)
        job = sdk.wait(job_id)
    finally:
        for response in held:
            response.close()
    assert job.done
    assert metric_value(stack["metrics"]["gateway"], "gateway_event_streams_user_limited_total") > refused_before


def test_cancel_and_delete(sdk, ten_minute_video):
    job_id = sdk.upload(ten_minute_video).job_id
    assert sdk.cancel(job_id).status == "cancelled"
    with pytest.raises(JobFailed):
        sdk.download(job_id)
    sdk.delete(job_id)
    with pytest.raises(ApiError) as gone:
        sdk.job(job_id)
    assert gone.value.status == 404 and gone.value.exit_code == 5


def test_a_bad_credential_is_an_auth_error(stack):
    with pytest.raises(AuthError) as refused:
        Client(stack["gateway"], api_key="v2m_not-a-real-key").jobs()
    assert refused.value.exit_code == 3


def test_the_webhook_helper_verifies_a_real_delivery_and_refuses_a_changed_one(sdk, videos):
    secret = sdk.me().webhook_secret
    with Receiver() as receiver:
        upload = sdk.upload(videos[2], {"callback_url": receiver.url})
        assert sdk.wait(upload.job_id).done
        [(headers, body)] = receiver.wait(1)
    event = verify_webhook(secret, body, headers)
    assert Client.verify_webhook(secret, body, headers) == event
    assert event["type"] == "job.done" and event["data"]["job_id"] == upload.job_id
    forged = json.dumps({**json.loads(body), "type": "job.failed"}).encode()
    with pytest.raises(InvalidWebhook):
        verify_webhook(secret, forged, headers)
