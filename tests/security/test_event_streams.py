"""Live event streams (GET /jobs/<id>/events) give their place back on every path — HEAD, a client that
goes away, an error in the stream, the job's end — and one user holds at most EVENT_STREAMS_PER_USER of
them, on a real gateway process of our own, watching its `gateway_event_streams` gauge return to 0."""
from __future__ import annotations

import base64
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from services.common.storage import job_records
from devkit.privstack import wait_until
from devkit.client import Client
from devkit.metrics import metric_value
from tests.helpers import stored_job

STREAMS_MAX, PER_USER = 4, 2
CLIENT_GONE_SECONDS = 10  # below the 15 s heartbeat: noticed by the poll, not by a failed write


@pytest.fixture(scope="module")
def gateway(stack, private):
    base, metrics = private("gateway", AUTH_URL=stack["auth"], EVENT_STREAMS_MAX=STREAMS_MAX,
                            EVENT_STREAMS_PER_USER=PER_USER)
    return {"base": base, "metrics": metrics}


@pytest.fixture
def user(gateway):
    return Client(gateway["base"]).signed_up()


def job_of(user: Client) -> str:
    """A queued job of the user's that nothing will convert (published: the outbox leaves it alone)."""
    claims = json.loads(base64.urlsafe_b64decode(user.token.split(".")[1] + "=="))
    return stored_job(owner=claims["sub"], published=True).id


def open_stream(user: Client, job_id: str) -> socket.socket:
    """A raw connection with the stream's headers and first event read."""
    address = urlsplit(user.base)
    sock = socket.create_connection((address.hostname, address.port), timeout=20)
    sock.sendall(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.token}\r\n\r\n"
                 .encode())
    received = b""
    while b"data: " not in received or b"\n\n" not in received.split(b"data: ", 1)[1]:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the first event: {received!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    received = b""
    while not received.endswith(b"0\r\n\r\n"):  # the last chunk of the chunked body
        chunk = sock.recv(65536)
        assert chunk, f"closed before the stream's end: {received!r}"
        received += chunk
    return received


def streams(gateway) -> float:
    return metric_value(gateway["metrics"], "gateway_event_streams")


def ends(gateway, reason: str) -> float:
    return metric_value(gateway["metrics"], "gateway_event_stream_ends_total", reason=reason) or 0


def wait_streams(gateway, count: int, timeout: float = 10) -> None:
    wait_until(lambda: streams(gateway) == count, f"gateway_event_streams == {count}", timeout)


def test_head_requests_give_their_place_back(gateway, user):
    job_id = job_of(user)
    for _ in range(3 * STREAMS_MAX):
        head = requests.head(f"{user.base}/jobs/{job_id}/events", headers=user.auth, timeout=10)
        assert head.status_code == 200 and head.headers["Content-Type"].startswith("text/event-stream")
    wait_streams(gateway, 0)
    assert ends(gateway, "closed") >= 3 * STREAMS_MAX
    sock = open_stream(user, job_id)  # the places are all free again
    sock.close()
    wait_streams(gateway, 0)


def test_a_client_that_goes_away_gives_its_place_back_within_a_poll(gateway, user):
    before = ends(gateway, "client_gone")
    sock = open_stream(user, job_of(user))
    assert streams(gateway) == 1
    sock.close()
    wait_streams(gateway, 0, timeout=CLIENT_GONE_SECONDS)
    assert ends(gateway, "client_gone") == before + 1


def test_an_error_in_the_stream_gives_its_place_back(gateway, user):
    job_id, before = job_of(user), ends(gateway, "error")
    sock = open_stream(user, job_id)
    # the next look fails (rev moves, as with every write of a job: a stream re-reads a job whose rev moved)
    job_records.collection().update_one({"_id": job_id}, {"$set": {"status": "no-such-status"}, "$inc": {"rev": 1}})
    wait_streams(gateway, 0)
    assert ends(gateway, "error") == before + 1
    sock.close()


def test_a_stream_of_a_job_that_stands_still_reads_its_revision_and_still_sends_each_change(gateway, user):
    """While the job stands still the stream looks at its revision alone (counted by the shared reads of
    revisions); a change is still sent at the next look, and a deletion ends the stream."""
    job_id = job_of(user)
    before = revision_polls(gateway)
    sock = open_stream(user, job_id)
    wait_until(lambda: revision_polls(gateway) >= before + 3, "the stream's looks at the job's revision", 10)
    assert job_records.claim_job(job_id, "streamer", 60) is not None
    job_records.set_progress(job_id, "streamer", 42.0, 3.0)
    assert b'"progress": 42.0' in read_until(sock, b'"progress": 42.0')
    job_records.delete_job(job_id)
    assert read_to_end(sock).count(b"event: deleted") == 1
    sock.close()
    wait_streams(gateway, 0)


def revision_polls(gateway) -> float:
    return metric_value(gateway["metrics"], "gateway_revision_reads_sum") or 0


def read_until(sock: socket.socket, wanted: bytes) -> bytes:
    received = b""
    while wanted not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before {wanted!r}: {received!r}"
        received += chunk
    return received


def test_the_final_status_ends_the_stream_and_gives_its_place_back(gateway, user):
    job_id, before = job_of(user), ends(gateway, "final")
    sock = open_stream(user, job_id)
    cancelled = requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    assert b'"status": "cancelled"' in read_to_end(sock)
    sock.close()
    wait_streams(gateway, 0)
    assert ends(gateway, "final") == before + 1


def test_one_user_holds_at_most_its_share_and_the_process_its_total(gateway, user):
    others = [Client(gateway["base"]).signed_up() for _ in range(STREAMS_MAX // PER_USER)]
    held = [open_stream(user, job_of(user)) for _ in range(PER_USER)]
    try:
        refused = requests.get(f"{user.base}/jobs/{job_of(user)}/events", headers=user.auth, timeout=10)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_streams"
        assert int(refused.headers["Retry-After"]) > 0
        held += [open_stream(other, job_of(other)) for other in others[:-1] for _ in range(PER_USER)]
        assert streams(gateway) == STREAMS_MAX
        full = requests.get(f"{user.base}/jobs/{job_of(others[-1])}/events", headers=others[-1].auth, timeout=10)
        assert full.status_code == 503 and full.json()["error"]["code"] == "too_busy"
        assert metric_value(gateway["metrics"], "gateway_event_streams_user_limited_total") == 1
    finally:
        for sock in held:
            sock.close()
    wait_streams(gateway, 0)
