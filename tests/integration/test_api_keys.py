"""Personal API keys against the running stack (real auth on MariaDB, real gateways): made, listed and
revoked through /me/api-keys; accepted as Bearer beside JWTs on /jobs, /upload and tus; read keys
refused on changes (403); a revoked key refused at once by two gateway processes; expired and forged
keys refused (401); limits and hostile input; no key in any log line or span."""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devkit.client import Client
from devkit.media import make_media
from devkit.metrics import metric_value
from devkit.net import free_port
from devkit.stack import private_gateways

KEYS_SEEN: list[str] = []  # every key made here: none may appear in a log or a span (last test)


@pytest.fixture(scope="module")
def gateways(stack, tmp_path_factory):
    """Two more gateway processes of our own on the test stack: replicas that share only auth."""
    env = dict(os.environ, AUTH_URL=stack["auth"])
    with private_gateways(env, {}, tmp_path_factory.mktemp("keys"), 2) as started:
        yield {"bases": [base for base, _ in started], "logs": [log for _, log in started]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("keys-media") / "clip.mp4", seconds=1)


def _user(stack) -> Client:
    return Client(stack["gateway"]).signed_up()


def _create(base: str, auth: dict, **body) -> requests.Response:
    response = requests.post(f"{base}/me/api-keys", headers=auth, json=body, timeout=10)
    if response.status_code == 201:
        KEYS_SEEN.append(response.json()["key"])
    return response


def _key(stack, user: Client, **body) -> str:
    response = _create(stack["gateway"], user.auth, **{"name": "test", **body})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _error(response: requests.Response) -> str:
    return response.json()["error"]["code"]


def test_create_list_revoke(stack):
    user = _user(stack)
    made = _create(stack["gateway"], user.auth, name="  backup script ", scope="read", expires_in_days=30)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["key"].startswith(f"v2m_{body['id']}_") and body["prefix"] == f"v2m_{body['id']}"
    assert body["name"] == "backup script" and body["scope"] == "read" and body["expires_at"].endswith("Z")
    secret = body["key"].rsplit("_", 1)[1]
    listed = requests.get(f"{stack['gateway']}/me/api-keys", headers=user.auth, timeout=10)
    assert listed.status_code == 200
    [entry] = listed.json()["api_keys"]
    assert set(entry) == {"id", "name", "prefix", "scope", "created_at", "last_used_at", "expires_at", "expired"}
    assert entry["id"] == body["id"] and entry["last_used_at"] is None and entry["expired"] is False
    assert secret not in listed.text
    # another user sees none of it and cannot revoke it
    other = _user(stack)
    assert requests.get(f"{stack['gateway']}/me/api-keys", headers=other.auth, timeout=10).json() == {"api_keys": []}
    assert requests.delete(f"{stack['gateway']}/me/api-keys/{body['id']}", headers=other.auth,
                           timeout=10).status_code == 404
    revoked = requests.delete(f"{stack['gateway']}/me/api-keys/{body['id']}", headers=user.auth, timeout=10)
    assert revoked.status_code == 204
    assert requests.get(f"{stack['gateway']}/me/api-keys", headers=user.auth, timeout=10).json() == {"api_keys": []}
    again = requests.delete(f"{stack['gateway']}/me/api-keys/{body['id']}", headers=user.auth, timeout=10)
    assert again.status_code == 404 and _error(again) == "not_found"


def test_full_key_works_like_a_token(stack, clip):
    user = _user(stack)
    key = _key(stack, user)
    me = requests.get(f"{stack['gateway']}/me", headers=_bearer(key), timeout=10)
    assert me.status_code == 200 and me.json()["email"] == user.email
    with open(clip, "rb") as f:
        upload = requests.post(f"{stack['gateway']}/upload", headers=_bearer(key), files={"file": ("clip.mp4", f)},
                               timeout=60)
    assert upload.status_code == 202, upload.text
    job_id = upload.json()["job_id"]
    jobs = requests.get(f"{stack['gateway']}/jobs", headers=_bearer(key), timeout=10)
    assert jobs.status_code == 200 and job_id in jobs.text
    assert user.wait_job(job_id)["status"] == "done"  # the key's job is the user's: their token sees it
    tus = requests.post(f"{stack['gateway']}/uploads/", headers={**_bearer(key), "Tus-Resumable": "1.0.0",
                                                                  "Upload-Length": "10"}, timeout=10)
    assert tus.status_code == 201
    # a full key may make another key; its use is recorded
    assert _create(stack["gateway"], _bearer(key), name="made by a key").status_code == 201
    listed = requests.get(f"{stack['gateway']}/me/api-keys", headers=user.auth, timeout=10).json()["api_keys"]
    used = next(k for k in listed if key.startswith(k["prefix"] + "_"))
    assert used["last_used_at"] is not None


def test_read_key_only_reads(stack, clip):
    user = _user(stack)
    key = _key(stack, user, scope="read")
    job_id = user.upload(clip).json()["job_id"]
    user.wait_job(job_id)
    assert requests.get(f"{stack['gateway']}/jobs/{job_id}", headers=_bearer(key), timeout=10).status_code == 200
    assert requests.get(f"{stack['gateway']}/me/api-keys", headers=_bearer(key), timeout=10).status_code == 200
    with requests.get(f"{stack['gateway']}/jobs/{job_id}/events", headers=_bearer(key), stream=True,
                      timeout=10) as events:
        assert events.status_code == 200 and events.headers["Content-Type"].startswith("text/event-stream")
    before = metric_value(stack["metrics"]["gateway"], "gateway_api_key_authentications_total",
                          result="read_only") or 0
    with open(clip, "rb") as f:
        upload = requests.post(f"{stack['gateway']}/upload", headers=_bearer(key), files={"file": ("clip.mp4", f)},
                               timeout=60)
    refused = [
        upload,
        requests.post(f"{stack['gateway']}/uploads/", headers={**_bearer(key), "Tus-Resumable": "1.0.0",
                                                                "Upload-Length": "10"}, timeout=10),
        requests.post(f"{stack['gateway']}/jobs/{job_id}/cancel", headers=_bearer(key), timeout=10),
        requests.delete(f"{stack['gateway']}/jobs/{job_id}", headers=_bearer(key), timeout=10),
        requests.post(f"{stack['gateway']}/me/webhook-secret", headers=_bearer(key), timeout=10),
        _create(stack["gateway"], _bearer(key), name="escalation"),
        requests.delete(f"{stack['gateway']}/me/api-keys/{key[4:20]}", headers=_bearer(key), timeout=10),
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.method, response.request.url, response.text)
        assert _error(response) == "read_only_key"
    assert user.job(job_id).status_code == 200  # nothing was deleted
    after = metric_value(stack["metrics"]["gateway"], "gateway_api_key_authentications_total", result="read_only")
    assert after - before == 5  # the gateway refused these; auth refused the two key routes itself


def test_revoked_key_stops_at_once_on_every_gateway(stack, gateways):
    user = _user(stack)
    made = _create(stack["gateway"], user.auth, name="replicas").json()
    first, second = gateways["bases"]
    for base in (first, second):
        assert requests.get(f"{base}/jobs", headers=_bearer(made["key"]), timeout=10).status_code == 200
    assert requests.delete(f"{first}/me/api-keys/{made['id']}", headers=user.auth, timeout=10).status_code == 204
    for base in (second, first, stack["gateway"]):
        refused = requests.get(f"{base}/jobs", headers=_bearer(made["key"]), timeout=10)
        assert refused.status_code == 401 and _error(refused) == "invalid_api_key"


def test_a_revoked_key_ends_its_open_event_stream(stack):
    """A live stream opened with a key does not outlive the key: at its next heartbeat the gateway asks
    again and ends the stream; opening it again answers 401."""
    from tests.helpers import stored_job

    user = _user(stack)
    made = _create(stack["gateway"], user.auth, name="stream").json()
    owner = requests.post(f"{stack['auth']}/api-keys/verify", json={"key": made["key"]}, timeout=10).json()["sub"]
    never_ends = stored_job(owner=owner, published=True).id  # queued, "published": no converter will take it
    url = f"{stack['gateway']}/jobs/{never_ends}/events"
    before = metric_value(stack["metrics"]["gateway"], "gateway_event_stream_ends_total", reason="revoked") or 0
    with requests.get(url, headers=_bearer(made["key"]), stream=True, timeout=60) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines(decode_unicode=True)
        assert next(line for line in lines if line.startswith("data:"))  # the job's view: the stream is live
        assert requests.delete(f"{stack['gateway']}/me/api-keys/{made['id']}", headers=user.auth,
                               timeout=10).status_code == 204
        assert ": keep-alive" not in list(lines)  # the gateway ends it at the next heartbeat, sending none
    assert metric_value(stack["metrics"]["gateway"], "gateway_event_stream_ends_total", reason="revoked") > before
    again = requests.get(url, headers=_bearer(made["key"]), timeout=10)
    assert again.status_code == 401 and _error(again) == "invalid_api_key"


def _expire(key_id: str) -> None:
    """Move the key's expiry into the past, in auth's own database."""
    from services.auth import db

    db.execute("UPDATE api_keys SET expires_at = expires_at - 2 * 86400 WHERE id = %s", (key_id,))


def test_expired_key_refused(stack):
    user = _user(stack)
    made = _create(stack["gateway"], user.auth, name="short", expires_in_days=1).json()
    assert requests.get(f"{stack['gateway']}/jobs", headers=_bearer(made["key"]), timeout=10).status_code == 200
    _expire(made["id"])
    refused = requests.get(f"{stack['gateway']}/jobs", headers=_bearer(made["key"]), timeout=10)
    assert refused.status_code == 401 and _error(refused) == "invalid_api_key"
    [listed] = requests.get(f"{stack['gateway']}/me/api-keys", headers=user.auth, timeout=10).json()["api_keys"]
    assert listed["expired"] is True


def test_forged_keys_refused(stack):
    user = _user(stack)
    key = _key(stack, user)
    key_id, secret = key[4:].split("_", 1)
    wrong_secret = f"v2m_{key_id}_{'A' * len(secret)}"
    unknown_id = f"v2m_{'0' * 16}_{secret}"
    checks = stack["metrics"]["auth"]
    before = {r: metric_value(checks, "auth_api_key_checks_total", result=r) or 0 for r in ("wrong_secret", "unknown")}
    forged = [wrong_secret, unknown_id, key + "x", key[:-1], "v2m_", "v2m_" + "a" * 5000,
              f"v2m_{key_id.upper()}_{secret}"]
    for candidate in forged:
        refused = requests.get(f"{stack['gateway']}/jobs", headers=_bearer(candidate), timeout=10)
        assert refused.status_code in (400, 401), candidate[:40]
        if refused.status_code == 401:
            assert _error(refused) == "invalid_api_key"
    after = {r: metric_value(checks, "auth_api_key_checks_total", result=r) for r in ("wrong_secret", "unknown")}
    assert after["wrong_secret"] - before["wrong_secret"] == 1 and after["unknown"] - before["unknown"] == 1
    # the internal check answers the same for anything that is not a key
    for body in ({"key": wrong_secret}, {"key": 42}, {}):
        assert requests.post(f"{stack['auth']}/api-keys/verify", json=body, timeout=10).status_code == 401


@pytest.fixture(scope="module")
def hostile_user(stack) -> Client:
    """One user for every refused request (none makes a key): a sign-up is two argon2 hashes."""
    return _user(stack)


@pytest.mark.parametrize("body,code", [
    ({"name": "x" * 101}, "invalid_name"),
    ({"name": "tab\there"}, "invalid_name"),
    ({"name": ""}, "invalid_name"),
    ({}, "invalid_name"),
    ({"name": "k", "admin": True}, "unknown_field"),
    ({"name": "k", "scope": "admin"}, "invalid_scope"),
    ({"name": "k", "expires_in_days": 0}, "invalid_expiry"),
    ({"name": "k", "expires_in_days": "7"}, "invalid_expiry"),
    ({"name": "k", "expires_at": "2000-01-01T00:00:00Z"}, "invalid_expiry"),
    ({"name": "k", "expires_at": "2999-01-01T00:00:00"}, "invalid_expiry"),
    ({"name": "k", "expires_in_days": 1, "expires_at": "2999-01-01T00:00:00Z"}, "invalid_expiry"),
])
def test_hostile_input(stack, hostile_user, body, code):
    refused = _create(stack["gateway"], hostile_user.auth, **body)
    assert refused.status_code == 400 and _error(refused) == code, refused.text


def test_key_management_needs_credentials(stack):
    for method in ("get", "post"):
        refused = requests.request(method, f"{stack['gateway']}/me/api-keys", json={"name": "k"}, timeout=10)
        assert refused.status_code == 401 and _error(refused) == "missing_token"
    bad = requests.post(f"{stack['gateway']}/me/api-keys", headers={"Authorization": "Bearer eyJ.x.y"},
                        json={"name": "k"}, timeout=10)
    assert bad.status_code == 401
    big = requests.post(f"{stack['gateway']}/me/api-keys", headers=_user(stack).auth, json={"name": "k" * 9000},
                        timeout=10)
    assert big.status_code == 413
    # a valid token of a user that does not exist (any more) makes no key
    from services.auth import tokens

    ghost = tokens.issue({"id": 987654321987, "email": "ghost@example.com", "is_admin": False})
    refused = _create(stack["gateway"], _bearer(ghost), name="k")
    assert refused.status_code == 401 and _error(refused) == "invalid_token"


def test_keys_per_user_limited(stack):
    user = _user(stack)
    limit = int(os.environ.get("API_KEYS_MAX_PER_USER", "20"))
    with ThreadPoolExecutor(8) as pool:  # concurrent creations: the limit holds all the same
        answers = list(pool.map(lambda n: _create(stack["gateway"], user.auth, name=f"k{n}").status_code,
                                range(limit + 4)))
    assert answers.count(201) == limit and answers.count(409) == 4
    listed = requests.get(f"{stack['gateway']}/me/api-keys", headers=user.auth, timeout=10).json()["api_keys"]
    assert len(listed) == limit


def test_key_while_auth_is_unreachable_is_503(stack, tmp_path):
    """A gateway that cannot reach auth cannot check a key: 503 auth_unavailable (retry), never 401 (the key
    may be valid) and never a pass."""
    user = _user(stack)
    key = _key(stack, user)
    env = dict(os.environ, AUTH_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with private_gateways(env, {}, tmp_path, 1) as [(base, _)]:
        refused = requests.get(f"{base}/jobs", headers=_bearer(key), timeout=30)
        assert refused.status_code == 503 and _error(refused) == "auth_unavailable"
        assert refused.headers["Retry-After"] == "5"


def test_no_key_in_logs_or_spans(stack, gateways):
    """Last: every key made by this module, in no log line of any service and in no exported span."""
    assert KEYS_SEEN
    texts = [path.read_text(errors="replace") for path in stack["logs"].glob("*.log")]
    texts += [path.read_text(errors="replace") for path in gateways["logs"]]
    with stack["otlp"].lock:
        texts.append(json.dumps(stack["otlp"].spans))
    secrets = [key.rsplit("_", 1)[1] for key in KEYS_SEEN]
    for text in texts:
        for secret in secrets:
            assert secret not in text
