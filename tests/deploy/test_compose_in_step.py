"""compose.yaml, as Debian's docker-compose resolves it (`docker-compose config`: no engine needed), parses
with and without the monitoring profile and stays in step with the Kustomize base: every workload of
kustomize/base has a compose service with the same container ports, every setting of its ConfigMaps the
same value (unless LOCAL_DIFFERENCES says why not), every secret it takes an env var for. drift() is the
comparison; test_drift_is_caught proves it fails on a changed copy."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

from tests.deploy.conftest import ROOT
from tests.deploy.test_compose import published

# Settings whose compose value differs from Kubernetes on purpose, and why.
LOCAL_DIFFERENCES = {
    "DEPLOY_ENV": "names the deployment in logs, traces and the build-info metric: compose, not dev",
    "OTEL_TRACES_EXPORTER": "no collector on a laptop: none unless .env sets otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "a collector on the host (host.docker.internal), not otel-collector.observability",
    "TRUSTED_PROXY_HOPS": "no ingress in front of the published gateway: trusting X-Forwarded-For would let a "
                          "client choose the address auth limits logins by",
}
HOST = "host.docker.internal"
MONITORING = {"prometheus", "grafana"}


def docker_compose(*args: str) -> str:
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose (.ci/run does)")
    # a clean environment and no .env: an operator's overrides must not change what is checked
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    with tempfile.NamedTemporaryFile(suffix=".env") as empty:
        p = subprocess.run([exe, "--env-file", empty.name, "-f", str(ROOT / "compose.yaml"), *args],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 0, f"docker-compose {' '.join(args)} failed:\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def resolved() -> dict:
    return yaml.safe_load(docker_compose("--profile", "monitoring", "config"))


@pytest.fixture(scope="module")
def base(build) -> dict[str, dict]:
    return workloads(build.docs("kustomize/base"))


def workloads(docs: list[dict]) -> dict[str, dict]:
    """name -> {settings, secrets, ports} of each Deployment/CronJob's first container."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    out = {}
    for d in docs:
        if d["kind"] not in ("Deployment", "CronJob"):
            continue
        pod = d["spec"]["jobTemplate"]["spec"]["template"] if d["kind"] == "CronJob" else d["spec"]["template"]
        c = pod["spec"]["containers"][0]
        settings: dict[str, str] = {}
        for ref in c.get("envFrom", []):
            settings |= maps[ref["configMapRef"]["name"]]
        out[d["metadata"]["name"]] = {
            "settings": settings,
            "secrets": {e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})},
            "ports": {p["name"]: p["containerPort"] for p in c.get("ports", [])},
        }
    return out


def container_ports(service: dict) -> set[int]:
    return {published(spec)[1] for spec in service.get("ports", [])} | {int(p) for p in service.get("expose", [])}


def scrape_targets(prometheus_config: dict) -> dict[str, set[str]]:
    return {job["job_name"]: {t for sc in job.get("static_configs", []) for t in sc["targets"]}
            for job in prometheus_config["scrape_configs"]}


def drift(base: dict[str, dict], compose: dict, scrape: dict[str, set[str]]) -> list[str]:
    """Every way compose differs from the Kustomize base beyond LOCAL_DIFFERENCES (empty: in step)."""
    problems = []
    for name, k8s in base.items():
        service = compose["services"].get(name)
        if service is None:
            problems.append(f"{name}: no compose service")
            continue
        env = {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}
        for key, value in k8s["settings"].items():
            if key not in LOCAL_DIFFERENCES and env.get(key) != value:
                problems.append(f"{name}: {key}={env.get(key)!r} in compose, {value!r} in Kubernetes")
        problems += [f"{name}: secret {key} not set" for key in sorted(k8s["secrets"] - env.keys())]
        if container_ports(service) != set(k8s["ports"].values()):
            problems.append(f"{name}: ports {sorted(container_ports(service))} in compose, "
                            f"{sorted(k8s['ports'].values())} in Kubernetes")
        if "metrics" in k8s["ports"] and scrape.get(name) != {f"{name}:{k8s['ports']['metrics']}"}:
            problems.append(f"{name}: Prometheus scrapes {scrape.get(name)}, metrics port {k8s['ports']['metrics']}")
    return problems


def compose_scrape() -> dict[str, set[str]]:
    return scrape_targets(yaml.safe_load((ROOT / "monitoring/prometheus/prometheus-compose.yml").read_text()))


def test_compose_parses_without_the_monitoring_profile():
    services = set(docker_compose("config", "--services").split())
    assert {"gateway", "auth", "converter", "notification", "janitor"} <= services


def test_compose_is_in_step_with_the_kustomize_base(base, resolved):
    assert set(base) == {"auth", "gateway", "converter", "notification", "janitor"}
    assert drift(base, resolved, compose_scrape()) == []


def test_every_local_difference_is_still_a_difference(base, resolved):
    """A reason for a difference that no longer exists is noise: remove it from LOCAL_DIFFERENCES."""
    for key in LOCAL_DIFFERENCES:
        assert any(key in k8s["settings"] and resolved["services"][name]["environment"].get(key) != k8s["settings"][key]
                   for name, k8s in base.items()), key


def test_the_published_gateway_trusts_no_forwarded_address(resolved):
    assert resolved["services"]["gateway"]["environment"]["TRUSTED_PROXY_HOPS"] == "0"


def test_drift_is_caught(base, resolved):
    changed = copy.deepcopy(resolved)
    changed["services"]["gateway"]["environment"]["MAX_UPLOAD_BYTES"] = "1"
    del changed["services"]["notification"]["environment"]["SMTP_HOST"]
    del changed["services"]["converter"]["environment"]["MONGO_URI"]
    changed["services"]["auth"]["expose"] = ["5001", "9103"]
    del changed["services"]["janitor"]
    scrape = compose_scrape() | {"notification": {"notification:9999"}}
    problems = drift(base, changed, scrape)
    for expected in ("gateway: MAX_UPLOAD_BYTES='1'", "notification: SMTP_HOST=None", "converter: secret MONGO_URI",
                     "auth: ports [5001, 9103]", "janitor: no compose service", "notification: Prometheus scrapes"):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert len(problems) == 6, problems
    # a difference listed with a reason is allowed; the same change to another setting is not
    changed = copy.deepcopy(resolved)
    changed["services"]["gateway"]["environment"]["DEPLOY_ENV"] = "elsewhere"
    assert drift(base, changed, compose_scrape()) == []


def test_host_services_resolve_on_linux(resolved):
    """host.docker.internal exists by itself only on Docker Desktop; Linux needs host-gateway."""
    users = {name for name, s in resolved["services"].items() if HOST in yaml.safe_dump(s)}
    assert {"gateway", "grafana"} <= users
    for name in users:
        assert f"{HOST}:host-gateway" in resolved["services"][name].get("extra_hosts", []), name


def mounts(service: dict) -> dict[str, tuple[str, str]]:
    """container path -> (host path relative to the repository, mode) of each bind mount."""
    out = {}
    for v in service.get("volumes", []):
        src, dst, *mode = v.split(":")
        if src.startswith("/"):
            out[dst] = (os.path.relpath(src, ROOT), mode[0] if mode else "rw")
    return out


def test_monitoring_profile_mounts_the_repository_rules_and_dashboards(resolved):
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {name for name, s in raw.items() if "profiles" in s} == MONITORING
    assert all(raw[name]["profiles"] == ["monitoring"] for name in MONITORING)
    prometheus, grafana = mounts(resolved["services"]["prometheus"]), mounts(resolved["services"]["grafana"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == ("monitoring/prometheus/prometheus-compose.yml", "ro")
    assert prometheus["/etc/prometheus/rules"] == ("monitoring/prometheus/rules", "ro")
    assert grafana["/etc/grafana/provisioning"] == ("monitoring/grafana/provisioning", "ro")
    dashboards = resolved["services"]["grafana"]["environment"]["GRAFANA_DASHBOARDS_DIR"]
    assert grafana[dashboards] == ("monitoring/grafana/dashboards", "ro")
    for kind in ("datasources", "dashboards"):
        assert list((ROOT / "monitoring/grafana/provisioning" / kind).glob("*.yml")), kind


def test_compose_prometheus_config_is_valid():
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool is not installed: apt-get install -y prometheus (.ci/run does)")
    p = subprocess.run([promtool, "check", "config", str(ROOT / "monitoring/prometheus/prometheus-compose.yml")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "rule files found" in p.stdout + p.stderr, p.stdout + p.stderr
    # the same jobs as the local configuration (the rules and dashboards select by job)
    local = yaml.safe_load((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    assert set(compose_scrape()) == set(scrape_targets(local))
