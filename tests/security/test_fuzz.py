"""Property-based fuzzing of the gateway's and auth's OpenAPI descriptions with schemathesis: no 5xx,
and every answer (status, content type, body, headers) matches the spec."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.client import Client

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert found, "schemathesis is not installed: pip install schemathesis==4.32.5"
    return found


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_service_matches_its_openapi_spec_under_fuzzing(stack, tmp_path, service):
    user = Client(stack["gateway"]).signed_up()
    report = tmp_path / "events.ndjson"
    command = [_schemathesis(), "run", f"{stack[service]}/openapi.json", "--checks", CHECKS,
               "--max-examples", os.environ.get("FUZZ_MAX_EXAMPLES", "25"), "--seed", "7", "--max-time", "75",
               "--header", f"Authorization: Bearer {user.token}", "--workers", "2",
               "--request-timeout", "20", "--phases", "examples,coverage,fuzzing",
               "--report", "ndjson", "--report-ndjson-path", str(report), "--no-color"]
    hooks = Path(__file__).with_name("schemathesis_hooks.py")
    done = subprocess.run(command, capture_output=True, text=True, timeout=170,
                          env=dict(os.environ, SCHEMATHESIS_HOOKS=str(hooks)))
    summary = "\n".join(done.stdout.splitlines()[-40:])
    print(summary)
    cases = 0
    if report.exists():
        for line in report.read_text().splitlines():
            event = json.loads(line)
            for key in event:
                if key.lower().endswith("scenariofinished"):
                    cases += 1
    print(f"schemathesis {service}: {cases} scenarios finished, exit {done.returncode}")
    failures = done.stdout[done.stdout.find("FAILURES"):] if "FAILURES" in done.stdout else done.stdout
    assert done.returncode == 0, f"schemathesis found problems:\n{failures[:8000]}\n{done.stderr[-2000:]}"
