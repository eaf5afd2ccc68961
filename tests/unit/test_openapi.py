"""Both services' OpenAPI documents, as served (common.openapi.finished): 3.1, every operation named for
generated clients and tagged, every error answered with the Problem schema; and the problem details
body and the RateLimit fields themselves."""
from __future__ import annotations

import json
import re

import pytest

from services.auth.openapi import SPEC as AUTH_SPEC
from services.common import problems, ratelimit
from services.common.openapi import NOT_ERRORS, finished
from services.gateway.openapi import SPEC as GATEWAY_SPEC

SPECS = {"gateway": GATEWAY_SPEC, "auth": AUTH_SPEC}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
OPERATION_ID = re.compile(r"^[a-z][A-Za-z0-9]*$")  # camelCase: a method name in any generated client


def operations(spec: dict):
    for path, item in finished(spec)["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


@pytest.mark.parametrize("service", SPECS)
def test_the_document_is_openapi_3_1(service):
    spec = finished(SPECS[service])
    assert spec["openapi"].startswith("3.1.")
    assert "nullable" not in json.dumps(spec)  # 3.0's keyword: 3.1 says "type": [..., "null"]


@pytest.mark.parametrize("service", SPECS)
def test_every_operation_has_a_unique_operation_id_and_a_tag(service):
    seen: dict[str, tuple[str, str]] = {}
    for path, method, operation in operations(SPECS[service]):
        operation_id = operation.get("operationId")
        assert operation_id and OPERATION_ID.match(operation_id), (path, method, operation_id)
        assert operation_id not in seen, (operation_id, seen.get(operation_id), (path, method))
        seen[operation_id] = (path, method)
        assert operation.get("tags") and all(isinstance(tag, str) and tag for tag in operation["tags"]), (path, method)


@pytest.mark.parametrize("service", SPECS)
def test_every_error_response_is_a_problem(service):
    for path, method, operation in operations(SPECS[service]):
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")) or (path, method, status) in NOT_ERRORS:
                continue
            content = response.get("content")
            if method == "head":
                assert not content, (path, method, status)  # a HEAD answer has no body
                continue
            problem = (content or {}).get("application/problem+json")
            assert problem and problem["schema"] == {"$ref": "#/components/schemas/Problem"}, (path, method, status)
            if status in ("429", "503"):
                assert "Retry-After" in response.get("headers", {}), (path, method, status)


@pytest.mark.parametrize("service", SPECS)
def test_the_problem_schema_keeps_the_error_object(service):
    schemas = finished(SPECS[service])["components"]["schemas"]
    assert {"type", "title", "status", "detail", "code", "error"} <= set(schemas["Problem"]["required"])
    assert schemas["Problem"]["properties"]["error"] == schemas["Error"]["properties"]["error"]
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message"]


def test_a_problem_body_has_the_members_and_the_old_error_object():
    body = problems.body(429, "quota_exceeded", "too many unfinished jobs", "/upload")
    assert body == {"type": "/problems/quota_exceeded", "title": "Quota exceeded", "status": 429,
                    "detail": "too many unfinished jobs", "instance": "/upload", "code": "quota_exceeded",
                    "error": {"code": "quota_exceeded", "message": "too many unfinished jobs"}}
    # the bytes of the error object are those Flask's jsonify wrote before
    assert b'"error":{"code":"quota_exceeded","message":"too many unfinished jobs"}}\n' in problems.encode(body)
    assert problems.title("a_code_nobody_listed", 404) == "Not Found"


def test_every_429_and_503_says_when_to_retry():
    assert problems.headers(429) == {"Retry-After": "5"} and problems.headers(503) == {"Retry-After": "5"}
    assert problems.headers(429, {"Retry-After": "30"}) == {"Retry-After": "30"}
    assert problems.headers(404) == {}
    raw = problems.raw_response(429, "too_many_connections", "at most 5")
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert b"Content-Type: application/problem+json" in head and b"Retry-After: 5" in head
    assert json.loads(payload)["error"] == {"code": "too_many_connections", "message": "at most 5"}


def test_ratelimit_fields_follow_the_draft_syntax():
    standings = [ratelimit.Standing("register", 10, 7, 3600, 1800),
                 ratelimit.Standing("event_streams", 3, -1, unit="concurrent-requests")]
    assert ratelimit.policy_field(standings) == '"register";q=10;w=3600, "event_streams";q=3;qu="concurrent-requests"'
    assert ratelimit.state_field(standings) == '"register";r=7;t=1800, "event_streams";r=0'


# Every place that answers an error with a literal code: (status, "code") calls and the domain's refusals.
_STATUS_AND_CODE = re.compile(r'\b(?:ApiError|error_response|canned|refusal)\(\s*\d{3},\s*"([a-z_]+)"')
_DOMAIN = re.compile(r'\b(?:QuotaExceeded|TooBusy|Conflict|NotFound|InvalidInput|TokenError|InvalidAccount)'
                     r'\(\s*"([a-z_]+)"')


def test_every_error_code_answered_has_a_title_and_a_page():
    from services.common import gunicorn_worker, web
    from devkit.stack import ROOT

    used = set(web._HTTP_CODES.values()) | set(gunicorn_worker._GUNICORN_CODES.values())
    for source in (ROOT / "services").rglob("*.py"):
        text = source.read_text()
        used |= set(_STATUS_AND_CODE.findall(text)) | set(_DOMAIN.findall(text))
    assert len(used) > 40  # the patterns still find the calls
    assert used <= set(problems.CODES), sorted(used - set(problems.CODES))
