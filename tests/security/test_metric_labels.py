"""Metric labels take bounded sets of values: 200 requests with made-up methods and paths add no series to
the /metrics of the gateway or of auth (the method label is one of a fixed set or `other`, the route label
the matched rule or `<unmatched>`)."""
from __future__ import annotations

import uuid

import pytest
import requests

from devkit.metrics import metric_samples

MADE_UP = 200


def made_up_requests(base: str, count: int) -> set[int]:
    """`count` requests, each with a method and a path nobody uses (some on real routes); their statuses."""
    statuses = set()
    with requests.Session() as session:
        for i in range(count):
            token = uuid.uuid4().hex[:12].upper()
            method = (f"X{token}", f"get{i}", f"PROPFIND{i}", f"M-{token}")[i % 4]
            path = (f"/no/such/{token}", "/jobs", f"/jobs/{token}", f"/{token}?q={token}")[i % 4]
            statuses.add(session.request(method, base + path, timeout=10).status_code)
    return statuses


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_made_up_methods_and_paths_add_no_series(stack, service):
    base, metrics = stack[service], stack["metrics"][service]
    made_up_requests(base, 4)  # the first ones may add the one `other`/<unmatched> series per status
    before = set(metric_samples(metrics))
    statuses = made_up_requests(base, MADE_UP)
    after = set(metric_samples(metrics))
    assert statuses and all(400 <= status < 500 for status in statuses), statuses
    print(f"{service}: {len(before)} series before, {len(after)} after {MADE_UP} made-up requests")  # the figure
    new = sorted(after - before)
    assert new == [], f"{len(new)} new series, e.g. {new[:5]}"
    methods = {dict(labels).get("method") for name, labels in after if name.startswith("http_request")}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods
