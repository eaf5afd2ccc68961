"""No credential reaches telemetry: a signed link's token, a secret in a webhook URL's query and a bearer
token appear in no span (name, attributes, events, status) the stack exports to the real OTLP receiver,
and in no JSON log line of any service; the `download?fid=` id is kept (it is no credential)."""
from __future__ import annotations

import json
import uuid

import pytest
import requests

from services.common.storage import files
from devkit.privstack import wait_until
from devkit.client import Client
from devkit.media import make_media
from devkit.receiver import Receiver


@pytest.fixture(scope="module")
def traced(stack, tmp_path_factory):
    """A done job with a webhook whose URL carries a secret, its signed link fetched, a forged one tried."""
    user = Client(stack["gateway"]).signed_up()
    hook_secret = f"hooksecret{uuid.uuid4().hex}"
    video = make_media(tmp_path_factory.mktemp("cred") / "clip.mp4", seconds=1)
    with Receiver() as receiver:
        job_id = user.upload(video, options={"callback_url": f"{receiver.url}&sig={hook_secret}"}).json()["job_id"]
        done = user.wait_job(job_id)
        receiver.wait(1)
    token = done["link"].rsplit("/links/", 1)[1]
    assert requests.get(f"{stack['gateway']}/links/{token}", timeout=30).status_code == 200
    assert requests.get(f"{stack['gateway']}/links/{token}x?sig={hook_secret}", timeout=30).status_code == 403
    assert user.download(done["mp3_id"]).status_code == 200
    _break_the_file(done["mp3_id"])  # an error in the middle of the link's answer: the server logs its URL
    with pytest.raises(requests.RequestException):
        requests.get(f"{stack['gateway']}/links/{token}", timeout=30).raise_for_status()
    wait_until(lambda: "Error handling request" in (stack["logs"] / "gateway.log").read_text(),
               "the gateway's log of the broken answer", timeout=30)
    otlp = stack["otlp"]
    wait_until(lambda: len([s for s in otlp.spans if s["attributes"].get("http.route") == "/links/<token>"]) >= 3,
               "the link requests' spans", timeout=30)
    wait_until(lambda: any(done["mp3_id"] in json.dumps(s["attributes"]) for s in otlp.spans
                           if s["attributes"].get("http.route") == "/download"), "the download's span", timeout=30)
    wait_until(lambda: any(s["name"] == "webhook deliver" and s["attributes"].get("vid2mp3.job_id") == job_id
                           for s in otlp.spans), "the webhook's span", timeout=30)
    return {"secrets": [token, hook_secret, user.token], "mp3_id": done["mp3_id"], "otlp": otlp}


def _break_the_file(mp3_id: str) -> None:
    bucket = files.results()
    bucket.chunks.delete_many({"files_id": files.file_info(bucket, mp3_id)["_id"]})


def exported(otlp) -> str:
    with otlp.lock:
        return json.dumps(otlp.spans)


def test_no_credential_in_any_span(traced):
    spans = exported(traced["otlp"])
    for secret in traced["secrets"]:
        assert secret not in spans
    assert "/links/[redacted]" in spans  # the link's spans are there, scrubbed
    assert f"fid={traced['mp3_id']}" in spans  # an id in a query is kept


def test_no_credential_in_any_log_line(traced, stack):
    for path in stack["logs"].glob("*.log"):
        text = path.read_text()
        for secret in traced["secrets"]:
            assert secret not in text, f"a credential in {path.name}"
