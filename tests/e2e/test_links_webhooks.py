"""Links that work in a browser and signed webhooks, through the whole running stack."""
from __future__ import annotations

import time

import pytest
import requests
import standardwebhooks

from services.common import config, links
from services.common.storage import job_records
from services.common.webhook_secrets import webhook_secret_of
from devkit.client import Client
from devkit.media import make_media
from devkit.receiver import Receiver
from tests.helpers import mails_for, wait_mail


@pytest.fixture(scope="module")
def user(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def receiver():
    with Receiver([500]) as server:  # the first delivery fails: the retry queues bring it back
        yield server


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media") / "song.mp4", seconds=2)


def upload(user, path, callback_url=None, field_first=True):
    fields = [("callback_url", (None, callback_url))] if callback_url is not None else []
    with open(path, "rb") as f:
        parts = [("file", (path.name, f))]
        return requests.post(f"{user.base}/upload", headers=user.auth, timeout=60,
                             files=fields + parts if field_first else parts + fields)


@pytest.fixture(scope="module")
def converted(user, video, receiver):
    response = upload(user, video, receiver.url)
    assert response.status_code == 202, response.text
    return user.wait_job(response.json()["job_id"])


def test_the_link_downloads_without_a_token_and_seeks(stack, user, converted):
    link = converted["link"]
    assert link.startswith(stack["gateway"] + "/links/"), converted
    whole = requests.get(link, timeout=30)
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "audio/mpeg"
    assert whole.content == user.download(converted["mp3_id"]).content
    part = requests.get(link, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(whole.content)}"
    assert user.job(converted["job_id"]).json()["link"] == link  # stable across views


def test_tampered_and_expired_links_answer_a_page_for_people(stack, converted):
    token = converted["link"].rsplit("/", 1)[1]
    forged = requests.get(f"{stack['gateway']}/links/{token[:-3]}abc", timeout=10)
    assert forged.status_code == 403 and forged.headers["Content-Type"].startswith("text/html")
    assert "not valid" in forged.text and "{" not in forged.text
    old = links.sign(converted["job_id"], converted["mp3_id"], time.time() - 1)
    expired = requests.get(f"{stack['gateway']}/links/{old}", timeout=10)
    assert expired.status_code == 410 and "expired" in expired.text
    assert expired.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_email_carries_the_link_instead_of_a_curl_line(stack, converted):
    mails = wait_mail(stack["mail"], converted["job_id"])
    body = mails[0].get_content()
    assert converted["link"] in body and "curl" not in body and "Bearer" not in body


def test_the_done_webhook_arrives_signed_after_a_500_with_one_email(stack, converted, receiver):
    requests_seen = receiver.wait(2)
    assert [h["webhook-id"] for h, _ in requests_seen] == [f"msg_{converted['job_id']}_done"] * 2
    owner = job_records.get_job(converted["job_id"]).owner
    event = standardwebhooks.Webhook(webhook_secret_of(owner)).verify(requests_seen[1][1], requests_seen[1][0])
    assert event["type"] == "job.done" and event["data"]["link"] == converted["link"]
    deadline = time.monotonic() + 10
    while job_records.get_job(converted["job_id"]).webhook["state"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_records.get_job(converted["job_id"]).webhook["attempts"] == 2
    assert len(mails_for(stack["mail"], converted["job_id"])) == 1  # the retry did not mail again


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://10.0.0.1/", "http://[::1]/", "gopher://x/"])
@pytest.mark.parametrize("field_first", [True, False])
def test_a_forbidden_callback_url_is_refused_at_upload(user, video, url, field_first):
    before = job_records.collection().count_documents({})
    response = upload(user, video, url, field_first)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_callback_url"
    assert job_records.collection().count_documents({}) == before


def test_a_cancelled_job_gets_its_webhook_retried_until_dead_lettered(user, tmp_path):
    long_video = make_media(tmp_path / "long.mp4", seconds=30)
    tries = 1 + len(config.retry_delays())
    with Receiver(default=500) as hook:
        job_id = upload(user, long_video, hook.url).json()["job_id"]
        assert requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10).status_code == 200
        seen = hook.wait(tries)
        deadline = time.monotonic() + 15
        while (job_records.get_job(job_id).webhook or {}).get("state") != "failed" and time.monotonic() < deadline:
            time.sleep(0.2)
    assert {headers["webhook-id"] for headers, _ in seen} == {f"msg_{job_id}_cancelled"}
    headers, body = seen[0]
    event = standardwebhooks.Webhook(webhook_secret_of(job_records.get_job(job_id).owner)).verify(body, headers)
    assert event["type"] == "job.cancelled" and event["data"]["status"] == "cancelled"
    record = job_records.get_job(job_id).webhook
    assert (record["state"], record["attempts"], record["status_code"]) == ("failed", tries, 500)
    assert len(hook.received) == tries  # given up: no further attempt


def test_rotating_the_webhook_secret(stack, user):
    url = f"{stack['gateway']}/me/webhook-secret"
    assert requests.post(url, timeout=10).status_code == 401
    first = requests.post(url, headers=user.auth, timeout=10)
    second = requests.post(url, headers=user.auth, timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.json()["webhook_secret"].startswith("whsec_")
    assert first.json()["webhook_secret"] != second.json()["webhook_secret"]


def test_deleting_the_job_revokes_its_link(user, converted):
    assert requests.delete(f"{user.base}/jobs/{converted['job_id']}", headers=user.auth, timeout=10).status_code == 204
    gone = requests.get(converted["link"], timeout=10)
    assert gone.status_code == 410 and "no longer available" in gone.text
