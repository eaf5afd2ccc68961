"""Every bad input gets its exact status and error code, through the real gateway and auth."""
from __future__ import annotations

import base64
import time

import jwt
import pytest
import requests

from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from services.common import release
from services.common.tokens import key_id
from tests.conftest import STACK_ENV
from devkit.client import Client
from devkit.media import make_media
from devkit.keys import hmac_token, new_private_pem, public_pem


@pytest.fixture(scope="module")
def user(stack):
    return Client(stack["gateway"]).signed_up()


@pytest.fixture(scope="module")
def gw(stack):
    return stack["gateway"]


def error_code(response: requests.Response) -> str:
    """The code of a problem details answer, whose members agree with the error object kept beside them."""
    assert response.headers["Content-Type"] == "application/problem+json", response.headers
    body = response.json()
    assert set(body["error"]) == {"code", "message"}, body
    assert body["code"] == body["error"]["code"] and body["detail"] == body["error"]["message"], body
    assert body["status"] == response.status_code and body["type"] == f"/problems/{body['code']}", body
    return body["error"]["code"]


# ---------------------------------------------------------------- register


@pytest.mark.parametrize("payload,status,code", [
    ({"email": "not-an-email", "password": "a-good-password"}, 400, "invalid_email"),
    ({"email": 12, "password": "a-good-password"}, 400, "invalid_email"),
    ({"email": "x" * 300 + "@example.com", "password": "a-good-password"}, 400, "invalid_email"),
    ({"email": "weak@example.com", "password": "short"}, 400, "weak_password"),
    ({"email": "weak2@example.com", "password": "aaaaaaaaaaaa"}, 400, "weak_password"),
    ({"email": "long@example.com", "password": "p" * 5000}, 400, "invalid_password"),
    ({"email": "types@example.com", "password": ["a", "list"]}, 400, "invalid_password"),
    ({"email": "' OR 1=1 --@example.com", "password": "a-good-password"}, 400, "invalid_email"),
    ({}, 400, "invalid_email"),
])
def test_register_rejects_bad_input(gw, payload, status, code):
    response = requests.post(f"{gw}/register", json=payload, timeout=10)
    assert response.status_code == status
    assert error_code(response) == code


def test_register_rejects_non_json_and_huge_bodies(gw):
    response = requests.post(f"{gw}/register", data="email=a", headers={"Content-Type": "text/plain"}, timeout=10)
    assert (response.status_code, error_code(response)) == (415, "unsupported_media_type")
    response = requests.post(f"{gw}/register", data="{not json", headers={"Content-Type": "application/json"},
                             timeout=10)
    assert (response.status_code, error_code(response)) == (400, "invalid_json")
    response = requests.post(f"{gw}/register", data="[1, 2]", headers={"Content-Type": "application/json"},
                             timeout=10)
    assert (response.status_code, error_code(response)) == (400, "invalid_json")
    response = requests.post(f"{gw}/register", data=b"{" + b" " * 200_000 + b"}",
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert (response.status_code, error_code(response)) == (413, "payload_too_large")


def test_register_duplicate_is_409_case_insensitive(gw, user):
    response = requests.post(f"{gw}/register", json={"email": user.email.upper(), "password": "another-password"},
                             timeout=10)
    assert (response.status_code, error_code(response)) == (409, "email_taken")


# ---------------------------------------------------------------- login and tokens


def test_login_wrong_password_and_unknown_user_look_the_same(gw, user):
    wrong = requests.post(f"{gw}/login", auth=(user.email, "wrong-password"), timeout=10)
    unknown = requests.post(f"{gw}/login", auth=("nobody@example.com", "wrong-password"), timeout=10)
    assert wrong.status_code == unknown.status_code == 401
    assert error_code(wrong) == error_code(unknown) == "invalid_credentials"
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize("header,code", [
    (None, "missing_credentials"),
    ("Bearer abc", "missing_credentials"),
    ("Basic !!!notbase64", "invalid_credentials"),
    ("Basic " + base64.b64encode(b"no-colon-here").decode(), "invalid_credentials"),
])
def test_login_malformed_credentials(gw, header, code):
    response = requests.post(f"{gw}/login", headers={"Authorization": header} if header else {}, timeout=10)
    assert response.status_code == 401
    assert error_code(response) == code


def test_login_token_is_eddsa_with_expected_claims(user):
    header = jwt.get_unverified_header(user.token)
    assert header["alg"] == "EdDSA" and header["kid"] == KID
    claims = jwt.decode(user.token, load_pem_public_key(public_pem(SIGNING_PEM).encode()), algorithms=["EdDSA"])
    assert claims["email"] == user.email and claims["admin"] is False
    assert claims["exp"] > claims["iat"] and isinstance(claims["sub"], str)


SIGNING_PEM = STACK_ENV["JWT_PRIVATE_KEY"]
SIGNING_KEY = load_pem_private_key(SIGNING_PEM.encode(), None)
KID = key_id(SIGNING_KEY.public_key())


def _forged(claims: dict, key=SIGNING_KEY, alg: str = "EdDSA", kid: str = KID) -> str:
    """A token signed by the stack's own key unless told otherwise."""
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _claims(**over) -> dict:
    now = int(time.time())
    return {"sub": "1", "email": "x@example.com", "admin": False, "iat": now, "exp": now + 600, **over}


def _alg_none(claims: dict) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    import json
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."


@pytest.mark.parametrize("token,code", [
    ("not-a-jwt", "invalid_token"),
    ("a.b.c", "invalid_token"),
    (_forged(_claims(), key="x" * 40, alg="HS256"), "invalid_token"),  # HMAC with a made-up secret
    (_forged(_claims(), key=load_pem_private_key(new_private_pem().encode(), None)), "invalid_token"),  # other key
    (_forged(_claims(), kid="no-such-key"), "invalid_token"),          # unknown kid
    (_forged(_claims(iat=1, exp=2)), "token_expired"),                  # expired
    (_forged(_claims(nbf=int(time.time()) + 3600)), "invalid_token"),  # not yet valid
    (hmac_token(_claims(), public_pem(SIGNING_PEM).encode(), KID), "invalid_token"),  # public key as HMAC secret
    (_forged({"email": "x@example.com", "iat": 1, "exp": 9999999999}), "invalid_token"),  # no sub
    (_alg_none(_claims(admin=True)), "invalid_token"),                  # alg=none
    ("x" * 5000, "invalid_token"),
])
def test_bad_tokens_are_401_never_500(gw, token, code):
    for path, method in (("/jobs", "get"), ("/upload", "post")):
        response = requests.request(method, f"{gw}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 401, (path, response.text)
        assert error_code(response) == code


def test_tampered_claims_are_rejected(gw, user):
    head, payload, signature = user.token.split(".")
    claims = jwt.decode(user.token, options={"verify_signature": False})
    claims["admin"] = True
    import json
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = requests.get(f"{gw}/jobs", headers={"Authorization": f"Bearer {head}.{forged_payload}.{signature}"},
                            timeout=10)
    assert (response.status_code, error_code(response)) == (401, "invalid_token")


def test_missing_token_everywhere(gw):
    for method, path in (("post", "/upload"), ("get", "/jobs"), ("get", "/jobs/abc"), ("get", "/download?fid=x")):
        response = requests.request(method, f"{gw}{path}", timeout=10)
        assert (response.status_code, error_code(response)) == (401, "missing_token"), path


# ---------------------------------------------------------------- upload


def test_upload_needs_exactly_one_nonempty_file(gw, user, tmp_path):
    video = make_media(tmp_path / "v.mp4", seconds=1)
    none = requests.post(f"{gw}/upload", headers=user.auth, files={"note": (None, "just a field")}, timeout=10)
    assert (none.status_code, error_code(none)) == (400, "missing_file")
    with open(video, "rb") as a, open(video, "rb") as b:
        two = requests.post(f"{gw}/upload", headers=user.auth, files=[("file", ("a.mp4", a)), ("file", ("b.mp4", b))],
                            timeout=10)
    assert (two.status_code, error_code(two)) == (400, "too_many_files")
    empty = requests.post(f"{gw}/upload", headers=user.auth, files={"file": ("empty.mp4", b"")}, timeout=10)
    assert (empty.status_code, error_code(empty)) == (400, "empty_file")
    raw = requests.post(f"{gw}/upload", headers={**user.auth, "Content-Type": "video/mp4"}, data=b"xxxx", timeout=10)
    assert (raw.status_code, error_code(raw)) == (415, "unsupported_media_type")
    broken = requests.post(f"{gw}/upload", headers={**user.auth, "Content-Type": "multipart/form-data; boundary=zz"},
                           data=b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\nabc",
                           timeout=10)
    assert (broken.status_code, error_code(broken)) == (400, "malformed_multipart")
    jobs = requests.get(f"{gw}/jobs", headers=user.auth, timeout=10).json()["jobs"]
    assert jobs == [], "rejected uploads must not create jobs"


def test_upload_over_the_limit_is_413(gw, user):
    # Declared length over the 2 GiB default limit: refused before reading the body.
    response = requests.post(f"{gw}/upload", headers={**user.auth, "Content-Type": "multipart/form-data; boundary=x",
                                                      "Content-Length": str(3 * 1024**3)}, data=b"", timeout=10)
    assert (response.status_code, error_code(response)) == (413, "payload_too_large")


# ---------------------------------------------------------------- jobs and download


def test_unknown_ids_are_404(gw, user):
    for path in ("/jobs/000000000000000000000000", "/jobs/../../etc/passwd", "/download?fid=000000000000000000000000",
                 "/download?fid=%24where"):
        response = requests.get(f"{gw}{path}", headers=user.auth, timeout=10)
        assert response.status_code == 404, path
        assert error_code(response) == "not_found"


def test_download_without_fid_is_400(gw, user):
    response = requests.get(f"{gw}/download", headers=user.auth, timeout=10)
    assert (response.status_code, error_code(response)) == (400, "missing_fid")


@pytest.mark.parametrize("query", ["limit=0", "limit=1000", "limit=abc", "offset=-1", "status=weird"])
def test_list_jobs_bad_parameters(gw, user, query):
    response = requests.get(f"{gw}/jobs?{query}", headers=user.auth, timeout=10)
    assert (response.status_code, error_code(response)) == (400, "invalid_parameter")


def test_unknown_route_and_method_are_json(gw):
    missing = requests.get(f"{gw}/nope", timeout=10)
    assert (missing.status_code, error_code(missing)) == (404, "not_found")
    wrong = requests.get(f"{gw}/upload", timeout=10)
    assert (wrong.status_code, error_code(wrong)) == (405, "method_not_allowed")


def test_the_instance_is_the_path_asked_json_escaped_never_sniffed(gw, user):
    """A hostile path comes back only as a JSON string, in an answer no browser may read as HTML; a problem
    relayed from auth names the gateway's path, not auth's."""
    hostile = requests.get(f"{gw}/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%0A%E2%80%A8", headers=user.auth,
                           timeout=10)
    assert error_code(hostile) == "not_found" and hostile.headers["X-Content-Type-Options"] == "nosniff"
    assert hostile.json()["instance"] == '/jobs/<script>alert(1)</script>"\n\u2028'
    assert b"\n" not in hostile.content.rstrip(b"\n") and b"\\u2028" in hostile.content  # escaped, one line
    relayed = requests.delete(f"{gw}/me/api-keys/0123456789abcdef", headers=user.auth, timeout=10)
    assert error_code(relayed) == "not_found" and relayed.json()["instance"] == "/me/api-keys/0123456789abcdef"


def test_health_readiness_and_docs(gw, stack):
    assert requests.get(f"{gw}/healthz", timeout=5).json() == {"status": "ok", "version": release.version()}
    # Strict: readiness does not blink (idle broker connections keep their heartbeats; tests/faults/test_7_idle.py).
    ready = requests.get(f"{gw}/readyz", timeout=10).json()
    assert ready == {"status": "ok", "checks": {"auth": "ok", "mongodb": "ok", "rabbitmq": "ok"}}
    spec = requests.get(f"{gw}/openapi.json", timeout=5).json()
    assert spec["openapi"].startswith("3.") and "/upload" in spec["paths"]
    docs = requests.get(f"{gw}/docs/", timeout=5)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert requests.get(f"{stack['auth']}/readyz", timeout=5).json()["checks"] == {"mysql": "ok"}
