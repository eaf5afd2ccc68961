"""Shared fixtures of the deployment tests: tools, a scratch copy of the manifests with example
secrets, and cached `kubectl kustomize` builds. Everything is offline."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TOOLS_BIN = ROOT / ".venv-tools" / "bin"
OVERLAYS = ["dev", "staging", "prod"]
# the long-running services (a Deployment each); the image builds these and the janitor (a CronJob)
SERVICES = ["auth", "gateway", "converter", "notification"]
IMAGES = [*SERVICES, "janitor"]
# Gateway API objects are validated by tests/deploy/gateway-api (npm packages, installed by the tests)
GATEWAY_API_DIR = ROOT / "tests" / "deploy" / "gateway-api"
GATEWAY_API_GROUPS = ("gateway.networking.k8s.io/", "gateway.networking.x-k8s.io/")


def project_version() -> str:
    """The release: pyproject.toml's [project] version, which every other copy must equal."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def tool(name: str, *candidates: Path) -> str:
    for c in candidates:
        if c.exists():
            return str(c)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: make .venv/.tools-installed "
                    "(installs requirements/tools.lock into .venv and requirements/checkov.lock into .venv-tools)")
    return found


@pytest.fixture(scope="session")
def kubectl() -> str:
    return tool("kubectl", VENV_BIN / "kubectl")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """k8s/, kustomize/, monitoring/, loadtest/ and the services' Dockerfile (as image/Dockerfile) copied
    aside, every *.env made from its *.env.example (the real ones are never committed)."""
    dst = tmp_path_factory.mktemp("deploy")
    for d in ("k8s", "kustomize", "monitoring", "loadtest"):
        # real secret files of an operator's work tree (kustomize/**/*.env) are never copied
        skip = ("*.env", "__pycache__") if d == "kustomize" else ("__pycache__", "out")
        shutil.copytree(ROOT / d, dst / d, ignore=shutil.ignore_patterns(*skip))
    (dst / "image").mkdir()
    shutil.copy(ROOT / "Dockerfile", dst / "image" / "Dockerfile")
    for example in (dst / "kustomize").rglob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return dst


class Builder:
    def __init__(self, kubectl: str, workdir: Path):
        self.kubectl, self.workdir, self._cache = kubectl, workdir, {}

    def text(self, rel: str) -> str:
        if rel not in self._cache:
            p = subprocess.run([self.kubectl, "kustomize", str(self.workdir / rel)],
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, f"kubectl kustomize {rel} failed:\n{p.stderr}"
            self._cache[rel] = p.stdout
        return self._cache[rel]

    def docs(self, rel: str) -> list[dict]:
        return [d for d in yaml.safe_load_all(self.text(rel)) if d]


@pytest.fixture(scope="session")
def build(kubectl, workdir) -> Builder:
    return Builder(kubectl, workdir)


def find(docs: list[dict], kind: str, name: str) -> dict:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def deployment_settings(docs: list[dict], name: str) -> tuple[dict, dict[str, str]]:
    """A Deployment's only container, and the settings its ConfigMaps give it."""
    (container,) = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    settings: dict[str, str] = {}
    for ref in container["envFrom"]:
        if "configMapRef" in ref:
            settings.update(find(docs, "ConfigMap", ref["configMapRef"]["name"])["data"])
    return container, settings


def memory_limit_mib(container: dict) -> float:
    quantity = container["resources"]["limits"]["memory"]
    for suffix, factor in {"Mi": 1, "Gi": 1024}.items():
        if quantity.endswith(suffix):
            return float(quantity[:-len(suffix)]) * factor
    raise AssertionError(f"write memory limits in Mi or Gi, not {quantity!r}")


def pod_specs(docs: list[dict]):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d, d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def npm_ci(folder: Path) -> None:
    """Installs `folder`'s locked npm packages, once per package-lock.json (node_modules keeps its hash)."""
    digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    stamp = folder / "node_modules" / ".installed-lock-sha256"
    if stamp.exists() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    if not npm:
        pytest.fail("npm is not installed: apt-get install nodejs npm (.ci/run does)")
    p = subprocess.run([npm, "ci", "--prefer-offline"], cwd=folder, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"npm ci in {folder} failed:\n{p.stderr[-3000:]}"
    stamp.write_text(digest)


def is_gateway_api(doc: dict) -> bool:
    return doc["apiVersion"].startswith(GATEWAY_API_GROUPS)


class GatewayApiValidator:
    """Gateway API objects checked against the schemas of @kubernetes-models/gateway-api, unknown fields
    refused (tests/deploy/gateway-api/validate.mjs), offline, all in one node run."""

    def __init__(self, node: str, scratch: Path):
        self.node, self.scratch = node, scratch

    def errors(self, objects: dict[str, dict]) -> dict[str, list[str]]:
        """{id: object} -> {id: errors} for the objects that are not valid."""
        if not objects:
            return {}
        path = self.scratch / "gateway-api-objects.json"
        path.write_text(json.dumps([{"id": k, "object": v} for k, v in objects.items()]))
        p = subprocess.run([self.node, str(GATEWAY_API_DIR / "validate.mjs"), str(path)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"validate.mjs failed:\n{p.stderr[-3000:]}"
        return json.loads(p.stdout)


@pytest.fixture(scope="session")
def gateway_api(tmp_path_factory) -> GatewayApiValidator:
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed: apt-get install nodejs npm (.ci/run does)")
    npm_ci(GATEWAY_API_DIR)
    return GatewayApiValidator(node, tmp_path_factory.mktemp("gateway-api"))
