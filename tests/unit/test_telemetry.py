"""The standard OTEL_* variables decide exporters, resource and excluded URLs; the code only fills gaps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from services.common import telemetry

ROOT = Path(__file__).resolve().parents[2]
OTEL_VARS = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_PYTHON_FLASK_EXCLUDED_URLS",
             "OTEL_PYTHON_EXCLUDED_URLS", "DEPLOY_ENV", "SERVICE_VERSION", "SENTRY_DSN")


@pytest.fixture
def clean_env(monkeypatch):
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def kinds(exporters) -> list[type]:
    return [type(e) for e in exporters]


def test_no_exporter_without_configuration(clean_env):
    assert telemetry.span_exporters() == []


def test_an_otlp_endpoint_alone_means_otlp(clean_env):
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert kinds(telemetry.span_exporters()) == [OTLPSpanExporter]


@pytest.mark.parametrize("value, expected", [
    ("none", []),
    ("otlp", [OTLPSpanExporter]),
    ("console", [ConsoleSpanExporter]),
    ("Console, otlp", [ConsoleSpanExporter, OTLPSpanExporter]),
    ("none,console", []),
])
def test_traces_exporter_names_the_exporters(clean_env, value, expected):
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    clean_env.setenv("OTEL_TRACES_EXPORTER", value)
    assert kinds(telemetry.span_exporters()) == expected


def test_unknown_exporter_stops_start_up(clean_env):
    clean_env.setenv("OTEL_TRACES_EXPORTER", "zipkin-typo")
    with pytest.raises(ValueError, match="zipkin-typo"):
        telemetry.span_exporters()


@pytest.mark.parametrize("standard, expected", [
    ({}, {"service.name": "converter", "service.version": "1.2.3", "deployment.environment.name": "staging"}),
    ({"OTEL_SERVICE_NAME": "converter-canary",
      "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod-eu,k8s.cluster.name=c1"},
     {"service.name": "converter-canary", "deployment.environment.name": "prod-eu", "k8s.cluster.name": "c1"}),
])
def test_resource_attributes_and_their_standard_overrides(clean_env, standard, expected):
    clean_env.setenv("DEPLOY_ENV", "staging")
    clean_env.setenv("SERVICE_VERSION", "1.2.3")
    for name, value in standard.items():
        clean_env.setenv(name, value)
    attributes = dict(telemetry.resource("converter").attributes)
    assert {key: attributes.get(key) for key in expected} == expected


def test_excluded_urls_default_only_when_unset(clean_env):
    assert telemetry.flask_excluded_urls() == telemetry.DEFAULT_FLASK_EXCLUDED_URLS
    clean_env.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "healthz")
    assert telemetry.flask_excluded_urls() is None
    clean_env.delenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS")
    clean_env.setenv("OTEL_PYTHON_EXCLUDED_URLS", "")  # set, even empty: trace everything
    assert telemetry.flask_excluded_urls() is None


def run_python(script: str, **env: str) -> str:
    """`script` in a fresh interpreter (a tracer provider can be set once per process); its stdout."""
    base = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def console_spans(stdout: str) -> list[dict]:
    """The spans ConsoleSpanExporter printed (indented JSON objects between the one-line JSON logs)."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (at := stdout.find("{", at)) >= 0:
        obj, at = decoder.raw_decode(stdout, at)
        if "context" in obj and "resource" in obj:
            spans.append(obj)
    return spans


def test_console_exporter_prints_spans_with_the_resource():
    stdout = run_python(
        "from services.common import telemetry\n"
        "telemetry.init_telemetry('converter')\n"
        "assert telemetry.service_name() == 'converter'\n"
        "with telemetry.tracer('probe').start_as_current_span('console-probe'):\n"
        "    pass\n"
        "telemetry.flush()\n",
        OTEL_TRACES_EXPORTER="console", DEPLOY_ENV="test-env")
    spans = console_spans(stdout)
    assert [s["name"] for s in spans] == ["console-probe"], stdout
    attributes = spans[0]["resource"]["attributes"]
    assert attributes["service.name"] == "converter"
    assert attributes["deployment.environment.name"] == "test-env"


APP_SCRIPT = """
from services.common import telemetry, web
app = web.create_base_app("auth", {})
client = app.test_client()
for path in ("/healthz", "/readyz"):
    assert client.get(path).status_code == 200, path
telemetry.flush()
"""


def test_flask_excluded_urls_variable_is_honoured():
    default = console_spans(run_python(APP_SCRIPT, OTEL_TRACES_EXPORTER="console"))
    assert [s["name"] for s in default] == []
    only_healthz = console_spans(run_python(APP_SCRIPT, OTEL_TRACES_EXPORTER="console",
                                            OTEL_PYTHON_FLASK_EXCLUDED_URLS="healthz"))
    assert sorted(s["name"] for s in only_healthz) == ["GET /readyz"]
