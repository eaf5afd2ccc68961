"""Errors from every layer of the real stack are RFC 9457 problem details that keep the older error
object (the gunicorn worker's own answers, Flask's 404/405, the routes' and the domain's errors, tus,
auth relayed by the gateway and auth itself), their types lead to a page, and the rate-limited routes
tell their limits in the RateLimit headers."""
from __future__ import annotations

import base64
import json
import re
import socket
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from devkit.client import Client
from services.common import problems
from tests.helpers import stored_job


@pytest.fixture(scope="module")
def gw(stack):
    return stack["gateway"]


@pytest.fixture(scope="module")
def user(stack):
    return Client(stack["gateway"]).signed_up()


def problem(response: requests.Response, status: int, code: str, path: str | None = None) -> dict:
    """The answer's problem details, checked member by member against the error object beside them."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/problem+json", response.headers
    body = response.json()
    assert body["error"] == {"code": code, "message": body["detail"]}, body
    assert (body["type"], body["status"], body["code"]) == (f"/problems/{code}", status, code), body
    assert body["title"] == problems.CODES[code][0], body
    if path is not None:
        assert body["instance"] == path, body
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) > 0
    return body


def raw(base: str, request: bytes) -> tuple[bytes, dict]:
    """Send bytes as they are (what no HTTP library would send); the answer's head and JSON body."""
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, json.loads(body)


# ------------------------------------------------------------- the layers


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_the_worker_answers_what_gunicorn_cannot_parse_as_problems(stack, service):
    cases = [(b"NOT A REQUEST\r\n\r\n", 400, "bad_request"),
             (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
             (b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 200000\r\n\r\n{",
              413, "payload_too_large")]
    for request, status, code in cases:
        head, body = raw(stack[service], request)
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
        assert b"\r\nContent-Type: application/problem+json\r\n" in head, head
        assert (body["status"], body["code"], body["error"]["code"]) == (status, code, code), body
        assert body["error"]["message"] == body["detail"] and body["type"] == f"/problems/{code}"


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_flask_404_and_405_are_problems(stack, service):
    problem(requests.get(f"{stack[service]}/no/such/route", timeout=10), 404, "not_found", "/no/such/route")
    refused = requests.delete(f"{stack[service]}/register", timeout=10)
    problem(refused, 405, "method_not_allowed", "/register")
    assert "POST" in refused.headers["Allow"]


def test_route_domain_and_relayed_auth_errors_are_problems(gw, stack, user):
    problem(requests.get(f"{gw}/download", headers=user.auth, timeout=10), 400, "missing_fid", "/download")
    problem(requests.get(f"{gw}/me", timeout=10), 401, "missing_token", "/me")
    # a domain error (services/common/errors.py NotFound) answered by the gateway's http_errors
    problem(requests.post(f"{gw}/jobs/000000000000000000000000/cancel", headers=user.auth, timeout=10), 404,
            "not_found", "/jobs/000000000000000000000000/cancel")
    # auth's own error, relayed by the gateway as it is, and the same from auth itself
    for base in (gw, stack["auth"]):
        taken = requests.post(f"{base}/register", json={"email": user.email, "password": "another-password"},
                              timeout=10)
        problem(taken, 409, "email_taken", "/register")
        problem(requests.post(f"{base}/login", auth=(user.email, "wrong-password"), timeout=10), 401,
                "invalid_credentials", "/login")


def test_tus_errors_are_problems(gw, user):
    problem(requests.post(f"{gw}/uploads/", headers={**user.auth, "Upload-Length": "10"}, timeout=10), 412,
            "unsupported_tus_version", "/uploads/")
    tus = {**user.auth, "Tus-Resumable": "1.0.0"}
    problem(requests.post(f"{gw}/uploads/", headers={**tus, "Upload-Length": "x"}, timeout=10), 400, "invalid_header")
    missing = f"/uploads/{'0' * 24}"
    problem(requests.patch(f"{gw}{missing}", data=b"abc", timeout=10, headers={
        **tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}), 404, "not_found", missing)


def test_a_client_that_accepts_only_json_still_gets_problem_json(gw):
    """problem+json is JSON (a +json type): answering it is what RFC 9457 recommends, never a 406."""
    answer = requests.get(f"{gw}/jobs/x", headers={"Accept": "application/json"}, timeout=10)
    problem(answer, 401, "missing_token", "/jobs/x")


def test_shared_links_answer_people_with_a_page_and_programs_with_problems(gw):
    forged = f"{gw}/links/not-a-real-token"
    page = requests.get(forged, headers={"Accept": "text/html,*/*;q=0.8"}, timeout=10)
    assert page.status_code == 403 and page.headers["Content-Type"].startswith("text/html")
    problem(requests.get(forged, headers={"Accept": "application/json"}, timeout=10), 403, "invalid_link",
            "/links/not-a-real-token")


def test_every_problem_type_leads_to_a_page_that_explains_it(gw):
    body = problem(requests.get(f"{gw}/no/such/route", timeout=10), 404, "not_found")
    page = requests.get(urljoin(f"{gw}/no/such/route", body["type"]), timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert problems.CODES["not_found"][0] in page.text
    listing = requests.get(f"{gw}/problems/", timeout=10).text
    assert set(re.findall(r'<li id="([a-z_]+)">', listing)) == set(problems.CODES)
    problem(requests.get(f"{gw}/problems/no_such_code", timeout=10), 404, "not_found")


# ------------------------------------------------------------- rate limits


def limits_of(response: requests.Response) -> tuple[dict, dict]:
    """RateLimit-Policy and RateLimit as {policy: {parameter: value}} (the draft's structured fields)."""
    def parse(field: str) -> dict:
        result = {}
        for item in field.split(", "):
            name, *parameters = item.split(";")
            result[json.loads(name)] = {key: json.loads(value) for key, value in (p.split("=") for p in parameters)}
        return result
    return parse(response.headers["RateLimit-Policy"]), parse(response.headers["RateLimit"])


def test_registrations_count_down_in_the_ratelimit_headers(gw):
    answers = [Client(gw).register() for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    (policy, first), (_, second) = limits_of(answers[0]), limits_of(answers[1])
    assert policy["register"]["q"] == 100000 and policy["register"]["w"] > 0
    assert second["register"]["r"] == first["register"]["r"] - 1
    assert 0 <= second["register"]["t"] <= policy["register"]["w"]


def test_failed_logins_count_down_and_a_success_restores_the_pair(gw, stack):
    who = Client(gw).signed_up()
    wrong = [requests.post(f"{gw}/login", auth=(who.email, "wrong-password"), timeout=10) for _ in range(2)]
    policy, state = limits_of(wrong[0])
    assert policy["login"] == {"q": 5, "w": 60} and "login_address" in policy
    assert [limits_of(w)[1]["login"]["r"] for w in wrong] == [4, 3]
    right = requests.post(f"{gw}/login", auth=(who.email, who.password), timeout=10)
    assert right.status_code == 200 and limits_of(right)[1]["login"]["r"] == 5


def test_event_streams_tell_the_per_user_cap(gw, user):
    claims = json.loads(base64.urlsafe_b64decode(user.token.split(".")[1] + "=="))
    job = stored_job(owner=claims["sub"])
    with requests.get(f"{gw}/jobs/{job.id}/events", headers=user.auth, stream=True, timeout=10) as stream:
        assert stream.status_code == 200
        policy, state = limits_of(stream)
        assert policy["event_streams"] == {"q": 2, "qu": "concurrent-requests"} and state["event_streams"]["r"] == 1
