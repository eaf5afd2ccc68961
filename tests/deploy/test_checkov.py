"""checkov on the prod overlay (kustomize and the built YAML) and the services' Dockerfile: zero failures.
Skips are annotations in the manifests, each with its reason."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from .conftest import TOOLS_BIN, VENV_BIN, tool


def _json_documents(text: str) -> list[dict]:
    """checkov prints one JSON document per runner (the kustomize runner adds its own)."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "[{":
            obj, i = dec.raw_decode(text, i)
            docs += obj if isinstance(obj, list) else [obj]
        else:
            i += 1
    return docs


@pytest.fixture(scope="module")
def checkov_reports(build, workdir):
    exe = tool("checkov", TOOLS_BIN / "checkov", VENV_BIN / "checkov")
    built = workdir / "prod-built.yaml"
    built.write_text(build.text("kustomize/overlays/prod"))
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "BC_SKIP_MAPPING": "TRUE"}
    reports = []
    for args in (["-d", str(workdir / "kustomize/overlays/prod"), "-d", str(workdir / "image"),
                  "--framework", "kustomize", "dockerfile"],
                 ["-f", str(built), "--framework", "kubernetes"]):
        p = subprocess.run([exe, *args, "--skip-download", "--output", "json"],
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode in (0, 1), p.stderr[-2000:]
        reports += _json_documents(p.stdout)
    return reports


def test_checkov_zero_failed(checkov_reports):
    frameworks = {r["check_type"]: r["summary"] for r in checkov_reports}
    print({k: f"passed {v['passed']}, failed {v['failed']}, skipped {v['skipped']}" for k, v in frameworks.items()})
    assert {"kustomize", "dockerfile", "kubernetes"} <= set(frameworks), frameworks
    failed = [f"{r['check_type']}: {c['check_id']} {c['resource']}" for r in checkov_reports
              for c in r["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert all(s["passed"] > 0 for s in frameworks.values())
    for r in checkov_reports:
        for c in r["results"].get("skipped_checks", []):
            assert c.get("check_result", {}).get("suppress_comment"), f"skip without reason: {c['check_id']}"
