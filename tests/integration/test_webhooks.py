"""Webhook deliveries of the notification worker to a real receiver on 127.0.0.1, checked with the
`standardwebhooks` package (not with the project's own code)."""
from __future__ import annotations

import json

import pytest
import standardwebhooks

from services.common import config, storage
from services.common.messaging import TransientError
from services.common.webhook_secrets import rotate, webhook_secret_of
from services.notification import deliveries
from tests.helpers import stored_job
from tests.support.receiver import Receiver


def ended_job(url: str, status: str = "done"):
    job = stored_job(callback_url=url, owner=f"hook-owner-{storage.new_id()}")
    fields = {"status": status, "ended_at": 1.0}
    if status == "done":
        fields["mp3_id"] = "m" * 24
    storage.jobs().update_one({"_id": job.id}, {"$set": fields})
    return job


def verified(job, request) -> dict:
    headers, body = request
    return standardwebhooks.Webhook(webhook_secret_of(job.owner)).verify(body, headers)


def test_retries_after_a_500_and_a_timeout_with_the_same_id_then_never_again(stack, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "0.5")
    with Receiver([500, ("sleep", 1.5)]) as receiver:
        job = ended_job(receiver.url)
        with pytest.raises(TransientError, match="HTTP 500"):
            deliveries.notify_webhook(job.id, "done", 0)
        assert storage.get_job(job.id).webhook | {"at": None} == {
            "webhook_id": f"msg_{job.id}_done", "state": "retrying", "attempts": 1, "at": None,
            "status_code": 500, "error": "HTTP 500"}
        with pytest.raises(TransientError, match="timed out"):
            deliveries.notify_webhook(job.id, "done", 1)
        record = storage.get_job(job.id).webhook
        assert (record["attempts"], record["status_code"], record["state"]) == (2, None, "retrying")
        deliveries.notify_webhook(job.id, "done", 2)
        deliveries.notify_webhook(job.id, "done", 2)  # a redelivery (say, for the email) calls nobody
        requests = receiver.wait(3)
    assert len(requests) == 3
    assert {headers["webhook-id"] for headers, _ in requests} == {f"msg_{job.id}_done"}
    assert len({body for _, body in requests}) == 1  # the same event every time
    event = verified(job, requests[-1])
    assert event["type"] == "job.done" and event["data"]["job_id"] == job.id
    assert event["data"]["link"].startswith(config.env("PUBLIC_URL") + "/links/")
    assert storage.get_job(job.id).webhook["state"] == "delivered"


def test_the_last_attempt_gives_up_and_a_rotated_secret_signs_the_next(stack):
    with Receiver(default=503) as receiver:
        job = ended_job(receiver.url, "failed")
        old = webhook_secret_of(job.owner)
        new = rotate(job.owner)
        assert new != old and new.startswith("whsec_")
        with pytest.raises(TransientError):  # the retry policy dead-letters it: no delay is left
            deliveries.notify_webhook(job.id, "failed", len(config.retry_delays()))
        request = receiver.wait(1)[0]
    assert storage.get_job(job.id).webhook["state"] == "failed"
    assert verified(job, request)["type"] == "job.failed"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(old).verify(request[1], request[0])


def test_a_redirect_to_a_private_address_is_not_followed(stack):
    with Receiver([("redirect", "http://10.0.0.1/steal")]) as receiver:
        job = ended_job(receiver.url, "cancelled")
        with pytest.raises(TransientError, match="redirect not followed"):
            deliveries.notify_webhook(job.id, "cancelled", 0)
        assert len(receiver.wait(1)) == 1
    record = storage.get_job(job.id).webhook
    assert record["status_code"] == 302 and record["error"] == "redirect not followed"


@pytest.mark.parametrize("url", ["http://localhost:{port}/", "http://10.0.0.1/", "http://[::1]:{port}/",
                                 "file:///etc/passwd"])
def test_forbidden_targets_are_refused_at_delivery_without_a_retry(stack, monkeypatch, url):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "")
    with Receiver() as receiver:
        job = ended_job(url.format(port=receiver.server.server_port))
        deliveries.notify_webhook(job.id, "done", 0)  # no exception: retrying cannot help
        assert receiver.received == []
    record = storage.get_job(job.id).webhook
    assert record["state"] == "failed" and "callback_url" in record["error"], record


def test_jobs_without_a_callback_or_deleted_are_skipped(stack):
    job = stored_job()
    deliveries.notify_webhook(job.id, "done", 0)
    deliveries.notify_webhook("no-such-job", "done", 0)
    assert storage.get_job(job.id).webhook is None
    assert json.loads(json.dumps(deliveries.event_data(storage.get_job(job.id))))["callback_url"] is None
