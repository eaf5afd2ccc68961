"""The KEDA objects of every build target validate against KEDA's API schema. kubernetes-validate
knows only Kubernetes' own kinds (test_kustomize_build.py skips CRDs); KEDA's schema comes from the
npm package @kubernetes-models/keda (JSON-schema validators generated from KEDA's Go API types, the
source of its CRDs), installed by this test from the committed lock into tests/deploy/keda-schema."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest

from .conftest import ROOT
from .test_kustomize_build import TARGETS

CHECKER = ROOT / "tests" / "deploy" / "keda-schema"


@pytest.fixture(scope="session")
def validate(tmp_path_factory):
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed to validate the KEDA objects (apt-get install nodejs npm)")
    if not (CHECKER / "node_modules" / "@kubernetes-models" / "keda" / "package.json").exists():
        p = subprocess.run([npm, "ci"], cwd=CHECKER, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"npm ci in {CHECKER} failed:\n{p.stderr}"
    tmp = tmp_path_factory.mktemp("keda-schema")

    def run(docs: list[dict]) -> str:
        path = tmp / "docs.json"
        path.write_text(json.dumps(docs))
        p = subprocess.run([node, "validate.mjs", str(path)], cwd=CHECKER, capture_output=True, text=True, timeout=120)
        assert p.returncode in (0, 1), p.stderr
        return p.stdout.strip()

    return run


def keda_docs(build, target: str) -> list[dict]:
    return [d for d in build.docs(target) if d["apiVersion"].startswith("keda.sh/")]


def test_every_keda_object_matches_kedas_schema(build, validate):
    docs = [d for t in TARGETS for d in keda_docs(build, t)]
    assert {d["kind"] for d in docs} == {"ScaledObject", "TriggerAuthentication"}
    assert validate(docs) == ""


def test_the_schema_check_rejects_what_the_api_server_would(build, validate):
    """The checker is no rubber stamp: a string where KEDA wants an integer, a number where trigger
    metadata wants a string, a secret reference without its key."""
    so = next(d for d in keda_docs(build, "kustomize/overlays/prod") if d["kind"] == "ScaledObject")
    auth = next(d for d in keda_docs(build, "kustomize/overlays/prod") if d["kind"] == "TriggerAuthentication")
    bad_so, bad_auth = copy.deepcopy(so), copy.deepcopy(auth)
    bad_so["spec"]["pollingInterval"] = "15"
    bad_so["spec"]["triggers"][0]["metadata"]["value"] = 3
    del bad_auth["spec"]["secretTargetRef"][0]["key"]
    out = validate([bad_so, bad_auth])
    assert "pollingInterval must be integer" in out and "metadata/value must be string" in out
    assert "must have required property key" in out
