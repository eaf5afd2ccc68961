"""The public ports show the API and nothing else: /metrics of auth and gateway lives on ports of its
own (as the workers' does), absent from the public ports and from the OpenAPI specs."""
from __future__ import annotations

import pytest
import requests

from devkit.client import Client
FAMILIES = {
    "gateway": ["http_requests_total", "http_request_duration_seconds", "gateway_uploads_total",
                "gateway_upload_bytes_total", "gateway_outbox_backlog", "gateway_token_verifications_total",
                "gateway_jwks_fetches_total", "gateway_jwks_keys", "gateway_api_key_authentications_total",
                "vid2mp3_build_info", "process_cpu_seconds_total"],
    "auth": ["http_requests_total", "http_request_duration_seconds", "auth_logins_total", "auth_registrations_total",
             "auth_password_hashes_total", "auth_password_hashes_in_progress",
             "auth_password_hash_places", "auth_password_hash_queued_total", "auth_password_hash_refused_total",
             "auth_password_hash_wait_seconds", "auth_login_slowdowns_total", "auth_api_key_checks_total",
             "vid2mp3_build_info",
             "process_cpu_seconds_total"],
}


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_metrics_is_404_on_the_public_port(stack, service):
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        response = requests.get(f"{stack[service]}/metrics", headers={"Accept": accept} if accept else {}, timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert "# TYPE" not in response.text


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_metrics_port_serves_the_metric_families(stack, service):
    Client(stack["gateway"]).signed_up()  # a registration, a login: requests through both services
    text = requests.get(f"{stack['metrics'][service]}/metrics", timeout=10).text
    types = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert set(FAMILIES[service]) <= types, set(FAMILIES[service]) - types
    requests_seen = [line for line in text.splitlines() if line.startswith("http_requests_total{")]
    assert any('route="/register"' in line and 'status="201"' in line for line in requests_seen), requests_seen
    # the public API is not served there, and the metrics port is not a second API
    for path in ("/register", "/healthz", "/openapi.json", "/"):
        other = requests.get(f"{stack['metrics'][service]}{path}", timeout=10)
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_openapi_does_not_list_metrics(stack, service):
    spec = requests.get(f"{stack[service]}/openapi.json", timeout=10).json()
    assert "/metrics" not in spec["paths"] and "/register" in spec["paths"]
