"""CI smoke run of the Locust scenarios: 3 users for ~30 s against this run's isolated local stack."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USERS = 3
DURATION = "30s"


def _run_module():
    spec = importlib.util.spec_from_file_location("loadtest_run", ROOT / "loadtest" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_locust_smoke(stack, tmp_path):
    if importlib.util.find_spec("locust") is None:
        pytest.fail("locust is not installed: .venv/bin/pip install locust==2.47.0")
    run = _run_module()
    env = dict(os.environ, LOADTEST_MEDIA_DIR=str(tmp_path / "media"), LOADTEST_JOB_TIMEOUT="20",
               OTEL_SERVICE_NAME="loadgen")
    started = time.monotonic()
    try:
        code = run.run(USERS, USERS, DURATION, stack["gateway"], tmp_path / "out", env=env, timeout=55)
    except subprocess.TimeoutExpired:
        pytest.fail("locust did not finish within 55 s")
    elapsed = time.monotonic() - started
    output = (tmp_path / "out" / "stdout.txt").read_text(errors="replace")
    rows = {(row["Type"], row["Name"]): row for row in run.read_stats(tmp_path / "out")}
    aggregated = rows[("", "Aggregated")]
    failures = (tmp_path / "out" / "locust_failures.csv").read_text()
    assert int(aggregated["Failure Count"]) == 0, f"failed requests:\n{failures}\n{output[-3000:]}"
    assert code == 0, output[-3000:]
    jobs = rows.get(("JOB", "upload→mp3"))
    assert jobs is not None and int(jobs["Request Count"]) >= USERS, \
        f"fewer completed jobs than users: {jobs}\n{output[-3000:]}"
    for kind, name in (("POST", "/register"), ("POST", "/login"), ("POST", "/upload"), ("GET", "/jobs/[id]"),
                       ("GET", "/download")):
        assert int(rows[(kind, name)]["Request Count"]) > 0, f"no {kind} {name} requests"
    assert (tmp_path / "out" / "report.html").stat().st_size > 0
    assert elapsed < 60, f"smoke run took {elapsed:.0f} s"
    _check_traces(stack)


def _check_traces(stack):
    """With OTEL_EXPORTER_OTLP_ENDPOINT set (conftest points it at its receiver), each task is a root span
    of service loadgen, and the gateway's and converter's spans continue its trace."""
    deadline = time.monotonic() + 10
    while True:
        spans = list(stack["otlp"].spans)
        roots = [s for s in spans if s["service"] == "loadgen" and s["name"] == "upload→mp3" and not s["parent_id"]]
        traces = {s["trace_id"] for s in roots}
        joined = [s for s in spans if s["service"] == "gateway" and s["trace_id"] in traces]
        if (roots and joined) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert roots, "no root span of service loadgen"
    assert joined, "the gateway's spans are not in the load generator's traces"
    assert any(s["service"] == "converter" and s["trace_id"] in traces for s in spans), \
        "the converter's spans are not in the load generator's traces"
