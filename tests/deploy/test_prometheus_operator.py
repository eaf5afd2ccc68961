"""The prometheus-operator component: its objects are valid against the operator's CRD schemas, its
PodMonitors scrape what the pod annotations ask for, its PrometheusRules are the rule files promtool
tests, and its ConfigMaps are the dashboard files."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest
import yaml

from .conftest import ROOT, pod_specs
from .test_kustomize_build import TARGETS
from .test_manifest_facts import _ingress_ports

COMBO = "kustomize/tests/prometheus-operator"
SCHEMAS = ROOT / "tests" / "deploy" / "operator_schemas"
OPERATOR_GROUP = "monitoring.coreos.com/v1"


def operator_objects(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["apiVersion"] == OPERATOR_GROUP]


@pytest.fixture(scope="module")
def validator() -> list[str]:
    """node and the operator's schemas (npm ci from the committed lock, again only when it changed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed: apt-get install nodejs npm")
    stamp = SCHEMAS / "node_modules" / ".lock-sha256"
    wanted = hashlib.sha256((SCHEMAS / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SCHEMAS,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        stamp.write_text(wanted)
    return [node, str(SCHEMAS / "validate.mjs")]


def validate(validator: list[str], docs: list[dict], tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "objects.json"
    path.write_text(json.dumps(docs))
    return subprocess.run([*validator, str(path)], capture_output=True, text=True, timeout=120)


def test_operator_objects_are_valid_against_the_crd_schemas(build, validator, tmp_path):
    """In every overlay and combination that has any (one node run)."""
    assert {d["kind"] for d in operator_objects(build.docs(COMBO))} == {"PodMonitor", "PrometheusRule"}
    docs = [d for t in TARGETS for d in operator_objects(build.docs(t))]
    p = validate(validator, docs, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("valid: ") == len(docs)


def test_the_schema_check_rejects_a_broken_object(build, validator, tmp_path):
    """The validator is not a no-op: a rule's `for` must be a duration string."""
    rule = next(d for d in operator_objects(build.docs(COMBO)) if d["kind"] == "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = 5
    p = validate(validator, [rule], tmp_path)
    assert p.returncode == 1 and "must be string" in p.stdout, p.stdout + p.stderr


def _annotated_pods(docs: list[dict]) -> dict[str, tuple[dict, dict]]:
    """app.kubernetes.io/name -> (pod template metadata, spec) of every pod asking to be scraped."""
    found = {}
    for workload, spec in pod_specs(docs):
        template = workload["spec"]["template"] if "template" in workload["spec"] else \
            workload["spec"]["jobTemplate"]["spec"]["template"]
        if template["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true":
            found[template["metadata"]["labels"]["app.kubernetes.io/name"]] = (template["metadata"], spec)
    return found


def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_pod_monitors_scrape_what_the_annotations_ask_for(build):
    docs = build.docs(COMBO)
    monitors = [d for d in operator_objects(docs) if d["kind"] == "PodMonitor"]
    pods = _annotated_pods(docs)
    # the services and RabbitMQ; Grafana stays with annotation scraping only
    assert {"auth", "gateway", "converter", "notification", "rabbitmq"} <= set(pods)
    for name in ("auth", "gateway", "converter", "notification", "rabbitmq"):
        meta, spec = pods[name]
        (monitor,) = [m for m in monitors if _selects(m["spec"]["selector"], meta["labels"])]
        # job = app.kubernetes.io/name, as prometheus-k8s.yml relabels it: the rules select on it
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        ports = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
        assert str(ports[endpoint["port"]]) == meta["annotations"]["prometheus.io/port"], name
        assert endpoint["path"] == meta["annotations"].get("prometheus.io/path", "/metrics"), name
        assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in endpoint["relabelings"]


def test_the_operators_prometheus_may_scrape_through_the_network_policies(build):
    """With network-policies, the Prometheus pods of the operator's namespace reach every port a
    PodMonitor scrapes (the component patches allow-prometheus-scrape)."""
    docs = build.docs(COMBO)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert policies, f"{COMBO} must build the network policies"
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    monitors = [d for d in operator_objects(docs) if d["kind"] == "PodMonitor"]
    for name, (meta, _spec) in _annotated_pods(docs).items():
        if not any(_selects(m["spec"]["selector"], meta["labels"]) for m in monitors):
            continue  # Grafana: annotation scraping only
        port = int(meta["annotations"]["prometheus.io/port"])
        admitted = [p for policy in policies for p, ports in _ingress_ports(policy, {"metadata": meta})
                    if port in ports or "any" in ports]
        assert peer in admitted, (name, port, admitted)


def test_prometheus_rules_are_the_rule_files(build):
    rules = {d["metadata"]["name"]: d["spec"] for d in operator_objects(build.docs(COMBO))
             if d["kind"] == "PrometheusRule"}
    files = sorted((ROOT / "monitoring" / "prometheus" / "rules").glob("*.yml"))
    assert files and set(rules) == {f"vid2mp3-{f.stem}" for f in files}
    for f in files:
        assert rules[f"vid2mp3-{f.stem}"] == yaml.safe_load(f.read_text()), f.name


def test_dashboard_config_maps_are_the_dashboard_files(build):
    maps = {d["metadata"]["name"]: d for d in build.docs(COMBO)
            if d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"}
    files = sorted((ROOT / "monitoring" / "grafana" / "dashboards").glob("*.json"))
    # no hash suffix: the sidecar would load a stale copy as a second dashboard with the same uid
    assert files and set(maps) == {f"grafana-dashboard-{f.stem}" for f in files}
    for f in files:
        assert maps[f"grafana-dashboard-{f.stem}"]["data"] == {f.name: f.read_text()}
