"""Static checks of monitoring/prometheus: promtool check config / check rules / test rules, and the
rules' own contract (labels, annotations, runbook anchors, every alert fired and resolved by a test)."""
from __future__ import annotations

import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from .conftest import run
from .queries import MONITORING, RULES_DIR, rules

PROM_DIR = MONITORING / "prometheus"
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
RUNBOOK = MONITORING / "RUNBOOK.md"
JOBS = {"auth", "gateway", "converter", "notification", "rabbitmq"}


def test_local_config_is_valid(promtool):
    proc = run([promtool, "check", "config", str(PROM_DIR / "prometheus.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rule files found" in proc.stdout + proc.stderr


def test_local_config_scrapes_the_stack():
    cfg = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    targets = {c["job_name"]: (c.get("metrics_path", "/metrics"), c["static_configs"][0]["targets"])
               for c in cfg["scrape_configs"]}
    assert targets["gateway"] == ("/metrics", ["127.0.0.1:9102"])  # metrics ports, never the API ports
    assert targets["auth"] == ("/metrics", ["127.0.0.1:9103"])
    assert targets["converter"] == ("/metrics", ["127.0.0.1:9100"])
    assert targets["notification"] == ("/metrics", ["127.0.0.1:9101"])
    assert targets["rabbitmq"] == ("/metrics/per-object", ["127.0.0.1:15692"])
    for c in cfg["scrape_configs"]:
        assert c["static_configs"][0]["labels"]["namespace"], c["job_name"]


def test_k8s_config_is_valid(promtool):
    """Debian's promtool is built without the Kubernetes service discovery, so if it rejects
    kubernetes_sd_configs the file is checked again with each of them swapped for a static target,
    and without `scrape_config_files` (Prometheus 2.43+; Debian's promtool is 2.42, the image 3.x):
    everything else (relabelling regexes, rule files, globals) is still validated by promtool."""
    path = PROM_DIR / "prometheus-k8s.yml"
    proc = run([promtool, "check", "config", str(path)])
    known_gaps = ("kubernetes_sd_configs not found", "scrape_config_files not found")
    if proc.returncode != 0 and any(gap in proc.stdout + proc.stderr for gap in known_gaps):
        cfg = yaml.safe_load(path.read_text())
        assert cfg.pop("scrape_config_files", ["scrape.d/*.yml"]) == ["scrape.d/*.yml"]
        sections = cfg["scrape_configs"] + cfg.get("alerting", {}).get("alertmanagers", [])
        for section in sections:
            if section.pop("kubernetes_sd_configs", None) is not None:
                section["static_configs"] = [{"targets": ["discovered-by-kubernetes-sd:1"]}]
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "prometheus-k8s.yml"
            copy.write_text(yaml.safe_dump(cfg, sort_keys=False))
            (Path(tmp) / "rules").symlink_to(RULES_DIR)
            proc = run([promtool, "check", "config", str(copy)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_k8s_config_uses_pod_annotations():
    cfg = yaml.safe_load((PROM_DIR / "prometheus-k8s.yml").read_text())
    pods = next(c for c in cfg["scrape_configs"] if c["job_name"] == "kubernetes-pods")
    assert pods["kubernetes_sd_configs"] == [{"role": "pod"}]
    relabel = pods["relabel_configs"]
    sources = {tuple(r.get("source_labels", [])): r for r in relabel}
    keep = sources[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]
    assert keep["action"] == "keep" and keep["regex"] == "true"
    assert sources[("__meta_kubernetes_pod_annotation_prometheus_io_path",)]["target_label"] == "__metrics_path__"
    port = sources[("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
    assert re.fullmatch(port["regex"], "10.1.2.3:5672;15692") and \
        re.sub(port["regex"], port["replacement"].replace("$", "\\"), "10.1.2.3:5672;15692") == "10.1.2.3:15692"
    assert re.sub(port["regex"], port["replacement"].replace("$", "\\"), "10.1.2.3;9100") == "10.1.2.3:9100"
    assert {r.get("target_label") for r in relabel} >= {"job", "namespace", "pod"}
    assert cfg["rule_files"] == ["rules/*.yml"]


def test_rule_files_are_valid(promtool):
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert files, "no rule files"
    proc = run([promtool, "check", "rules", *files])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rule_unit_tests_pass(promtool):
    """Every rule test file, one promtool each, as many at once as there are cores (promtool runs the
    files of one call one after the other; the longest takes half the time of all)."""
    assert RULE_TESTS, "no promtool rule tests"
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        procs = list(pool.map(lambda path: run([promtool, "test", "rules", str(path)], cwd=PROM_DIR), RULE_TESTS))
    failed = [proc.stdout + proc.stderr for proc in procs if proc.returncode != 0]
    assert not failed, "\n".join(failed)


def test_every_alert_fires_and_resolves_in_a_unit_test():
    alerts = {r["alert"] for _, r in rules("alert")}
    fired, resolved = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            checks = sorted(case.get("alert_rule_test", []), key=lambda c: _duration(c["eval_time"]))
            firing_at = {}
            for check in checks:
                name, t = check["alertname"], _duration(check["eval_time"])
                if check.get("exp_alerts"):
                    fired.add(name)
                    firing_at.setdefault(name, t)
                elif name in firing_at and t > firing_at[name]:
                    resolved.add(name)
    assert alerts - fired == set(), f"alerts never shown firing by a test: {sorted(alerts - fired)}"
    assert alerts - resolved == set(), f"alerts never shown resolving by a test: {sorted(alerts - resolved)}"
    assert (fired | resolved) <= alerts, f"tests name unknown alerts: {sorted((fired | resolved) - alerts)}"


def _duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", str(text)))


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings of a markdown document."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


@pytest.mark.parametrize("where,rule", rules("alert"), ids=lambda x: x if isinstance(x, str) else x["alert"])
def test_alert_has_severity_annotations_and_runbook(where, rule):
    assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
    ann = rule["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert ann.get(key, "").strip(), f"{rule['alert']} has no {key}"
    path, _, anchor = ann["runbook_url"].partition("#")
    assert path == "monitoring/RUNBOOK.md" and anchor == rule["alert"].lower(), ann["runbook_url"]
    assert anchor in _anchors(RUNBOOK.read_text()), f"RUNBOOK.md has no section for {rule['alert']}"
    assert "namespace" in rule["expr"] or "up{" in rule["expr"], "alerts must keep the namespace label"


def test_runbook_sections_match_alerts():
    alerts = {r["alert"].lower() for _, r in rules("alert")}
    text = RUNBOOK.read_text()
    sections = {r.lower() for r in re.findall(r"^## (\w+)$", text, re.M)}
    assert sections == alerts, f"runbook sections without an alert: {sorted(sections - alerts)}"
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        title = block.splitlines()[0].strip()
        if title.lower() in alerts:
            for part in ("Meaning", "Impact", "Diagnosis", "Mitigation"):
                assert f"**{part}" in block, f"runbook section {title} lacks '{part}'"


def test_burn_rate_thresholds_match_the_policy():
    by_name = {r["alert"]: r for _, r in rules("alert")}
    for slo in ("APIAvailability", "JobSuccess"):
        fast = by_name[f"{slo}BudgetBurnFast"]["expr"]
        slow = by_name[f"{slo}BudgetBurnSlow"]["expr"]
        assert by_name[f"{slo}BudgetBurnFast"]["labels"]["severity"] == "page"
        assert by_name[f"{slo}BudgetBurnSlow"]["labels"]["severity"] == "ticket"
        for window, factor in (("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")):
            assert re.search(rf"ratio_rate{window} > \({re.escape(factor)} \* 0\.001\)", fast), (slo, window)
        for window, factor in (("1d", "3"), ("2h", "3")):
            assert re.search(rf"ratio_rate{window} > \({factor} \* 0\.001\)", slow), (slo, window)
        for window in ("3d", "6h"):
            assert re.search(rf"ratio_rate{window} > 0\.001", slow), (slo, window)


def test_recorded_windows_exist():
    recorded = {r["record"] for _, r in rules("record")}
    for slo in ("api", "job", "job_latency"):
        for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
            assert f"namespace:slo_{slo}_errors:ratio_rate{window}" in recorded


def test_job_slo_counts_only_system_failures():
    expr = next(r["expr"] for _, r in rules("record") if r["record"] == "namespace:slo_job_errors:ratio_rate5m")
    numerator, denominator = expr.rsplit("/", 1)
    assert 'result="dead_lettered"' in numerator and 'result="failed"' not in numerator
    assert 'result=~"success|failed|dead_lettered"' in denominator
