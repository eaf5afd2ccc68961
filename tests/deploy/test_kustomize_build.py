"""Every overlay and every component combination builds and validates against the Kubernetes schemas."""
from __future__ import annotations

import subprocess

import kubernetes_validate
import pytest
import yaml

from .conftest import OVERLAYS, ROOT, is_gateway_api

K8S_VERSION = "1.35.0"  # a current release; the schemas ship with kubernetes-validate
# Custom resources whose schemas are not Kubernetes' own: KEDA's are checked by test_keda_schema.py, the
# prometheus-operator's by test_prometheus_operator.py, Gateway API objects against its schemas below; Envoy
# Gateway's and NGINX Gateway Fabric's policies have no schema offline: test_gateway_api.py checks their
# targets and formats.
CRD_EXCEPTIONS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
                  ("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor"),
                  ("monitoring.coreos.com/v1", "PrometheusRule"),
                  ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"),
                  ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"),
                  ("gateway.nginx.org/v1alpha1", "ClientSettingsPolicy")}

COMBOS = sorted(p.name for p in (ROOT / "kustomize" / "tests").iterdir() if (p / "kustomization.yaml").exists())
TARGETS = [f"kustomize/overlays/{o}" for o in OVERLAYS] + [f"kustomize/tests/{c}" for c in COMBOS]


@pytest.fixture(scope="module")
def gateway_api_errors(build, gateway_api) -> dict[str, list[str]]:
    """The Gateway API objects of every target, validated in one run: {"<target>#<index>": errors}."""
    return gateway_api.errors({f"{t}#{i}": d for t in TARGETS for i, d in enumerate(build.docs(t))
                               if is_gateway_api(d)})


@pytest.mark.parametrize("target", TARGETS)
def test_builds_and_validates_strict(build, gateway_api_errors, target):
    docs = build.docs(target)
    assert docs, f"{target} built nothing"
    errors = []
    for i, d in enumerate(docs):
        if (d["apiVersion"], d["kind"]) in CRD_EXCEPTIONS:
            continue
        if is_gateway_api(d):
            errors += [f"{d['kind']}/{d['metadata']['name']}: {e}" for e in gateway_api_errors.get(f"{target}#{i}", [])]
            continue
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: {e.message} at {list(e.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{d['apiVersion']} {d['kind']}: no schema (add to CRD_EXCEPTIONS only if it is a CRD)")
    assert not errors, "\n".join(errors)


def test_every_component_is_in_a_test_combination():
    components = {p.name for p in (ROOT / "kustomize" / "components").iterdir() if p.is_dir()}
    used = set()
    for c in COMBOS:
        kustomization = yaml.safe_load((ROOT / "kustomize" / "tests" / c / "kustomization.yaml").read_text())
        used |= {path.rsplit("/", 1)[-1] for path in kustomization.get("components", [])}
    assert {"in-cluster-infra", "monitoring", "converter-keda", "network-policies", "gateway-api",
            "ingress"} <= components
    assert components <= used, f"components never built by kustomize/tests: {components - used}"


def test_no_real_secret_is_committed():
    for env in (ROOT / "kustomize").rglob("*.env.example"):
        assert env.with_suffix("").name.endswith(".env")
    ignore = (ROOT / "kustomize" / ".gitignore").read_text()
    assert "*.env" in ignore and "!*.env.example" in ignore
    for kust in (ROOT / "kustomize").rglob("kustomization.yaml"):
        text = kust.read_text()
        assert "kind: Secret" not in text
    # token signing keys live only in secrets.env / the secret store: no PEM private key is committed
    # (the examples leave JWT_PRIVATE_KEY empty; test stacks make theirs at run time)
    found = subprocess.run(["git", "grep", "-lE", r"BEGIN (EC |RSA |OPENSSH )?PRIVATE KEY-----(\\n|$)[A-Za-z0-9+/]"],
                           cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 1, f"private keys committed in: {found.stdout}"
