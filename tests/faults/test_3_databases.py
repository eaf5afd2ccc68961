"""MongoDB stand-in and MariaDB down in turn: 503 with a JSON error, readiness red, liveness green,
and recovery without restarting any service."""
from __future__ import annotations

import requests

from devkit.privstack import upload_bytes, wait_until


def _get(url, **kw):
    return requests.get(url, timeout=15, **kw)


def _json_error(response, status=503):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["error"]["code"] and body["error"]["message"]
    assert "Traceback" not in response.text


def test_mariadb_outage(private_stack):
    stack = private_stack
    user = stack.client()
    pids = {name: stack.pid(name) for name in ("auth", "gateway")}
    stack.mariadb.stop()
    try:
        _json_error(requests.post(f"{stack.gateway}/login", auth=(user.email, user.password), timeout=15))
        _json_error(requests.post(f"{stack.auth}/login", auth=(user.email, user.password), timeout=15))
        _json_error(requests.post(f"{stack.gateway}/register", json={"email": "new@example.com",
                                                                     "password": "long-enough-pw-1"}, timeout=15))
        assert _get(f"{stack.auth}/readyz").status_code == 503
        assert _get(f"{stack.gateway}/readyz").status_code == 503
        assert _get(f"{stack.auth}/healthz").status_code == 200
        assert _get(f"{stack.gateway}/healthz").status_code == 200
        # Issued tokens are still honoured: validation needs no database.
        assert _get(f"{stack.gateway}/jobs", headers=user.auth).status_code == 200
    finally:
        stack.mariadb.start()
    wait_until(lambda: requests.post(f"{stack.gateway}/login", auth=(user.email, user.password),
                                     timeout=15).status_code == 200, "login works again", 30)
    assert _get(f"{stack.auth}/readyz").status_code == 200
    assert {name: stack.pid(name) for name in pids} == pids


def test_mongodb_outage(private_stack, media):
    stack = private_stack
    user = stack.client()
    response = upload_bytes(stack.gateway, user.token, media["short"], "before.mp4")
    assert response.status_code == 202
    before = response.json()["job_id"]
    stack.wait_final([before], 60)
    mp3_id = stack.job(before)["mp3_id"]
    # a conditional poll reads the job's revision alone, in a read shared with the polls of the moment
    etag = _get(f"{stack.gateway}/jobs/{before}", headers=user.auth).headers["ETag"]
    conditional = {**user.auth, "If-None-Match": etag}
    pids = {name: stack.pid(name) for name in ("auth", "gateway", "converter", "notification")}
    stack._mongo = None
    stack.terminate("mongodb", grace=20)
    rejected = 0
    _json_error(_get(f"{stack.gateway}/jobs", headers=user.auth))
    _json_error(_get(f"{stack.gateway}/jobs/{before}", headers=user.auth))
    _json_error(_get(f"{stack.gateway}/jobs/{before}", headers=conditional))
    _json_error(_get(f"{stack.gateway}/download", params={"fid": mp3_id}, headers=user.auth))
    response = upload_bytes(stack.gateway, user.token, media["short"], "during.mp4")
    _json_error(response)
    rejected += 1
    assert _get(f"{stack.gateway}/readyz").status_code == 503
    assert _get(f"{stack.gateway}/healthz").status_code == 200
    assert _get(f"{stack.converter_http}/healthz").status_code == 200
    assert _get(f"{stack.notification_http}/healthz").status_code == 200
    # Login does not need MongoDB.
    assert requests.post(f"{stack.gateway}/login", auth=(user.email, user.password), timeout=15).status_code == 200

    stack.up()  # brings back only the MongoDB stand-in, on the same data
    wait_until(lambda: _get(f"{stack.gateway}/jobs", headers=user.auth).status_code == 200, "gateway recovers", 30)
    assert _get(f"{stack.gateway}/download", params={"fid": mp3_id}, headers=user.auth).status_code == 200
    assert _get(f"{stack.gateway}/jobs/{before}", headers=conditional).status_code == 304
    response = upload_bytes(stack.gateway, user.token, media["short"], "after.mp4")
    assert response.status_code == 202, response.text
    after = response.json()["job_id"]
    stack.figures("MongoDB stand-in stop/start", [before, after], rejected=rejected)
    assert {name: stack.pid(name) for name in pids} == pids
