"""Every PromQL expression of the monitoring setup, ready to send to a Prometheus.

Used by the static lint tests here and meant for the live test against the running stack:

    from tests.monitoring.queries import all_queries, INCIDENT_ONLY, WARM_UP
    for source, expr in all_queries(namespace="local"):
        result = query(expr)                      # instant query against the live Prometheus
        if not result and expr not in INCIDENT_ONLY and expr not in WARM_UP: fail(source, expr)

Sources:
* every target expression of every panel, the annotation queries and the templating queries
  (label_values(metric, label) is turned into the query `metric` it reads) of
  monitoring/grafana/dashboards/*.json, with the Grafana variables substituted;
* every recording rule of monitoring/prometheus/rules/*.yml (alerting rules are left out: an alert
  expression returns data only while it fires; they are exercised by the promtool unit tests).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
DASHBOARD_DIR = MONITORING / "grafana" / "dashboards"
RULES_DIR = MONITORING / "prometheus" / "rules"

# Values used for Grafana's built-in variables. $__rate_interval is at least 4 scrape intervals (15 s).
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "1h",
    "__interval_ms": "30000",
    "__range_s": "3600",
}


def _substitute(expr: str, namespace: str, multi_value: str = ".*") -> str:
    """Replace Grafana variables: $namespace by the namespace, every multi-value variable by a
    match-all regex (what Grafana sends for "All"), built-ins by sensible durations."""

    def repl(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        name = name.split(":")[0]          # ${var:format}
        if name in BUILTINS:
            return BUILTINS[name]
        if name == "namespace":
            return namespace
        if name == "datasource":
            return "prometheus"
        return multi_value

    return re.sub(r"\$\{([A-Za-z0-9_:]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, expr)


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def iter_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def raw_dashboard_queries() -> list[tuple[str, str]]:
    """(source, expr) with Grafana variables still in place."""
    out = []
    for name, dash in dashboards().items():
        for panel in iter_panels(dash.get("panels", [])):
            for t in panel.get("targets", []):
                if t.get("expr"):
                    out.append((f"{name} panel {panel['id']} '{panel.get('title')}' {t.get('refId')}", t["expr"]))
        for ann in dash.get("annotations", {}).get("list", []):
            if ann.get("expr"):
                out.append((f"{name} annotation '{ann.get('name')}'", ann["expr"]))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q or "")
            if m:  # label_values(selector, label): the selector must return series
                out.append((f"{name} variable '{var['name']}'", m.group(1)))
            elif q:
                out.append((f"{name} variable '{var['name']}'", q))
    return out


def rules(kind: str | None = None) -> list[tuple[str, dict]]:
    """(file:group, rule) for every rule, optionally only "record" or "alert" rules."""
    out = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if kind is None or kind in rule:
                    out.append((f"{path.name}:{group['name']}", rule))
    return out


def recording_rule_queries() -> list[tuple[str, str]]:
    return [(f"{where} record {r['record']}" + (f" {r['labels']}" if r.get("labels") else ""), r["expr"].strip())
            for where, r in rules("record")]


def all_queries(namespace: str = "local") -> list[tuple[str, str]]:
    """Every dashboard and recording-rule expression as (source, expr), variables substituted."""
    out = [(src, _substitute(expr, namespace)) for src, expr in raw_dashboard_queries()]
    out += recording_rule_queries()
    return out


# ------------------------------------------------------------------------------------------------
# Expressions (as all_queries() returns them with namespace="local") that legitimately return no
# data on a healthy system under normal traffic. A live test must not fail on them being empty.
_NS = "local"
INCIDENT_ONLY: dict[str, str] = {
    f'max by (alertname, severity) (ALERTS{{namespace="{_NS}", alertstate="firing", slo!=""}})':
        "ALERTS only has series while an SLO burn-rate alert is pending or firing.",
    f'max by (alertname, severity) (ALERTS{{namespace="{_NS}", alertstate="firing"}})':
        "ALERTS only has series while some alert is pending or firing.",
    f'ALERTS{{alertstate="firing", namespace="{_NS}"}}':
        "dashboard annotation: marks firing alerts, none on a healthy system.",
    f'sum by (result) (rate(converter_jobs_total{{namespace="{_NS}", result=~"retried|dead_lettered"}}[1m]))':
        "the retried/dead_lettered children of converter_jobs_total exist only after the first transient "
        "failure (prometheus_client creates a labelled child on first use).",
    f'sum by (tool, cause) (rate(converter_child_failures_total{{namespace="{_NS}"}}[1m]))':
        "converter_child_failures_total{tool,cause} has children only after a media tool was killed or hit a "
        "system fault (the fault tests produce them; a healthy conversion never does).",
}

# Expressions that are correct but need time after Prometheus starts before they return data.
WARM_UP: dict[str, str] = {
    **{expr: "the vid2mp3-slo-30d rule group is evaluated every 5 minutes: empty until its first evaluation"
       for expr in [
           f'1 - namespace:slo_api_errors:ratio_rate30d{{namespace="{_NS}"}}',
           f'1 - namespace:slo_job_errors:ratio_rate30d{{namespace="{_NS}"}}',
           f'1 - namespace:slo_job_latency_errors:ratio_rate30d{{namespace="{_NS}"}}',
           f'namespace:slo_api_error_budget:remaining_30d{{namespace="{_NS}"}}',
           f'namespace:slo_job_error_budget:remaining_30d{{namespace="{_NS}"}}',
           f'namespace:slo_job_latency_error_budget:remaining_30d{{namespace="{_NS}"}}',
       ]},
}
