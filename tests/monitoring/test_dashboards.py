"""Lint of the Grafana dashboards and provisioning (monitoring/grafana) and of the PromQL they use."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import run
from .promql import metric_names, promtool_parse
from .queries import (INCIDENT_ONLY, MONITORING, WARM_UP, all_queries, dashboards, iter_panels,
                      raw_dashboard_queries, rules)

GRAFANA = MONITORING / "grafana"
EXPECTED = {"service-overview.json", "pipeline.json", "slo.json", "rabbitmq.json"}
MULTI_VALUE = {"service", "route", "queue"}

# Metric names of the services (tests/monitoring does not import the services: this is the contract).
CONTRACT_METRICS = {
    "vid2mp3_build_info", "http_requests_total", "http_request_duration_seconds",
    "gateway_uploads_total", "gateway_upload_bytes_total", "gateway_outbox_backlog", "gateway_outbox_published_total",
    "auth_logins_total", "auth_registrations_total",
    # bounded password hashing and slowed-down logins (auth, issue 20)
    "auth_password_hashes_total", "auth_password_hashes_in_progress", "auth_password_hash_places",
    "auth_password_hash_queued_total", "auth_password_hash_refused_total", "auth_password_hash_wait_seconds",
    "auth_login_slowdowns_total",
    "gateway_token_verifications_total", "gateway_jwks_fetches_total", "gateway_jwks_keys",
    "gateway_api_key_authentications_total",  # requests made with an API key (issue 22)
    "converter_jobs_total", "converter_conversion_duration_seconds", "converter_queue_wait_seconds",
    "converter_job_e2e_latency_seconds", "converter_audio_seconds_total", "converter_bytes_in_total",
    "converter_bytes_out_total", "converter_jobs_in_progress", "notification_emails_total",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
    # job lifecycle (gateway) and media tool faults (converter)
    "gateway_job_cancels_total", "gateway_job_deletes_total", "gateway_event_streams",
    # how live event streams end and the per-user cap's refusals (gateway, issue 20)
    "gateway_event_stream_ends_total", "gateway_event_streams_user_limited_total",
    "gateway_web_page_loads_total",
    "gateway_job_views_total",  # status answers from a kept body or built (gateway, issue 24)
    "gateway_revision_reads_sum", "gateway_revision_reads_count",  # polls per shared read (gateway, issue 24)
    "converter_child_failures_total",
    # webhooks (notification) and signed-link downloads (gateway)
    "notification_webhooks_total", "gateway_link_downloads_total",
    # webhook places, deferrals per user and whole-exchange deadline cuts (notification, issue 20)
    "notification_webhooks_in_flight", "notification_webhook_slots", "notification_webhooks_deferred_total",
    "notification_webhook_timeouts_total", "notification_webhook_duration_seconds",
    # dedup and idempotent uploads (gateway)
    "gateway_uploads_reused_total", "gateway_idempotent_replays_total",
    # outputs asked for per upload (gateway, issue 23)
    "gateway_job_outputs_bucket", "gateway_job_outputs_count", "gateway_job_outputs_sum",
    # uploads by the preset they named (gateway, issue 23)
    "gateway_upload_presets_total",
    # conversions by output format and by option given (converter, issue 14)
    "converter_outputs_total", "converter_option_uses_total",
    # result files per job: several outputs, split=chapters (converter, issue 23)
    "converter_results_per_job_sum", "converter_results_per_job_count", "converter_results_per_job_bucket",
    # resumable (tus) uploads (gateway; in progress counted from MongoDB by storage_metrics.py)
    "gateway_tus_uploads_total", "vid2mp3_tus_uploads_in_progress",
    # slow clients and quotas (gateway)
    "gateway_uploads_in_progress", "gateway_quota_rejections_total", "gateway_too_busy_total",
    # slow and hostile clients cut off or refused by the HTTP worker, downloads' places (auth, gateway; issue 20)
    "vid2mp3_http_client_timeouts_total", "vid2mp3_http_refused_total", "vid2mp3_http_connections_reading",
    "gateway_downloads_in_progress",
    # results refused or stopped for their size (converter, issue 20)
    "converter_output_limited_total",
    # URL imports (converter, issue 23)
    "converter_imports_total", "converter_import_bytes_total", "converter_import_duration_seconds",
    # the janitor's figures, exposed by the gateway (services/gateway/storage_metrics.py)
    "vid2mp3_storage_bytes", "vid2mp3_storage_files", "vid2mp3_storage_capacity_bytes",
    "vid2mp3_storage_removed_files_total", "vid2mp3_jobs_expired_total", "vid2mp3_storage_uploads_in_progress",
    "vid2mp3_janitor_last_run_timestamp_seconds",
}
PROMETHEUS_BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def _rabbitmq_metrics() -> set[str]:
    path = Path(__file__).with_name("rabbitmq_per_object_metrics.txt")
    return {line.split()[0] for line in path.read_text().splitlines() if line and not line.startswith("#")}


def _known_metrics() -> set[str]:
    known = set(PROMETHEUS_BUILTIN) | _rabbitmq_metrics() | {r["record"] for _, r in rules("record")}
    for name in CONTRACT_METRICS:
        known.add(name)
        if name.endswith("_seconds"):  # histograms
            known |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return known


def test_dashboard_files_are_generated_and_current():
    assert set(dashboards()) == EXPECTED
    proc = subprocess.run([sys.executable, str(GRAFANA / "generate_dashboards.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_uids_unique_and_descriptions_present():
    uids = [d["uid"] for d in dashboards().values()]
    assert len(uids) == len(set(uids)), uids
    for name, d in dashboards().items():
        assert d.get("title") and len(d.get("description", "")) > 80, f"{name}: dashboard needs a title and purpose"
        assert d.get("tags"), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_panels(name):
    dash = dashboards()[name]
    panels = list(iter_panels(dash["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    for p in panels:
        where = f"{name} panel {p['id']}"
        assert p.get("title", "").strip(), f"{where}: no title"
        ds = p.get("datasource")
        assert isinstance(ds, dict) and ds.get("uid"), f"{where}: no datasource"
        assert ds["uid"] == "${datasource}", f"{where}: use the $datasource variable, not a fixed datasource"
        if p["type"] == "row":
            continue
        assert p.get("description", "").strip(), f"{where} '{p['title']}': no description"
        assert p.get("targets"), f"{where}: no query"
        for t in p["targets"]:
            assert t.get("datasource", {}).get("uid") == "${datasource}", f"{where}: target without datasource"
        defaults = p["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{where} '{p['title']}': no unit"
        assert defaults.get("thresholds", {}).get("steps"), f"{where}: no thresholds"
        gp = p["gridPos"]
        assert 0 <= gp["x"] and gp["x"] + gp["w"] <= 24, f"{where}: off the grid"


def test_stat_and_error_panels_have_real_thresholds():
    """Panels about errors, latency, budget or backlog must colour a bad value, not just list it."""
    for name, dash in dashboards().items():
        for p in iter_panels(dash["panels"]):
            if p["type"] == "row":
                continue
            title = p["title"].lower()
            if re.search(r"error|5xx|latency|budget|burn|dead[- ]letters?\b|backlog|waiting|targets up|wait", title) \
                    and p["type"] in ("stat", "timeseries") and "exemplar" not in title:
                steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
                assert len(steps) >= 2, f"{name} '{p['title']}' has no threshold"


def test_every_query_parses(promtool):
    exprs = all_queries()
    assert len(exprs) > 100
    errors = promtool_parse(promtool, exprs)
    assert not errors, "\n".join(errors)


def test_every_metric_exists():
    known = _known_metrics()
    exprs = all_queries() + [(f"alert {r['alert']}", r["expr"]) for _, r in rules("alert")]
    unknown = {}
    for src, expr in exprs:
        for name in metric_names(expr) - known:
            unknown.setdefault(name, src)
    assert not unknown, f"metrics not exported by any service or by RabbitMQ: {unknown}"


def test_every_recording_rule_is_used():
    recorded = {r["record"] for _, r in rules("record")}
    used = set()
    for _src, expr in all_queries() + [(None, r["expr"]) for _, r in rules("alert")]:
        used |= metric_names(expr)
    for _src, rule in rules("record"):
        used |= metric_names(rule["expr"]) - {rule["record"]}
    assert recorded - used == set(), f"recorded but never read: {sorted(recorded - used)}"


def test_no_hard_coded_instances_and_namespace_templated():
    for src, expr in raw_dashboard_queries():
        assert not re.search(r'\b(instance|pod|node|kubernetes_pod_name)\s*=~?\s*"[^"$]', expr), \
            f"{src}: hard-coded instance: {expr}"
        assert not re.search(r"127\.0\.0\.1|localhost|:\d{4,5}\b", expr), f"{src}: hard-coded address: {expr}"
        if not src.endswith("variable 'namespace'"):  # the query that lists the namespaces
            assert 'namespace="$namespace"' in expr, f"{src}: not templated by namespace: {expr}"
        for var in MULTI_VALUE:
            if f"${var}" in expr:
                assert re.search(rf'=~"\${var}"', expr), f"{src}: multi-value ${var} needs =~: {expr}"


def test_template_variables():
    for name, dash in dashboards().items():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        assert "namespace" in variables, name
        used = " ".join(e for s, e in raw_dashboard_queries() if s.startswith(name))
        for var in variables:
            if var != "datasource":
                assert f"${var}" in used, f"{name}: variable ${var} is never used"
        for var in set(variables) & MULTI_VALUE:
            assert variables[var]["multi"] and variables[var]["includeAll"] and variables[var]["allValue"] == ".*"


def test_allow_lists_are_current():
    exprs = {e for _, e in all_queries()}
    for listing in (INCIDENT_ONLY, WARM_UP):
        stale = [e for e in listing if e not in exprs]
        assert not stale, f"allow-list entries that no dashboard or rule uses any more: {stale}"
        assert all(reason.strip() for reason in listing.values())


def test_datasource_provisioning():
    cfg = yaml.safe_load((GRAFANA / "provisioning/datasources/vid2mp3.yml").read_text())
    by_uid = {d["uid"]: d for d in cfg["datasources"]}
    prom, traces = by_uid["prometheus"], by_uid["traces"]
    assert prom["type"] == "prometheus" and prom["url"] == "$PROMETHEUS_URL" and prom["isDefault"]
    assert prom["jsonData"]["exemplarTraceIdDestinations"] == [{"name": "trace_id", "datasourceUid": "traces"}]
    assert traces["type"] in {"jaeger", "tempo"} and traces["url"] == "$TRACES_URL"


def test_dashboard_provisioning():
    cfg = yaml.safe_load((GRAFANA / "provisioning/dashboards/vid2mp3.yml").read_text())
    (provider,) = cfg["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "$GRAFANA_DASHBOARDS_DIR"


def test_exemplars_requested_on_histogram_panels():
    found = [t for d in dashboards().values() for p in iter_panels(d["panels"])
             for t in p.get("targets", []) if t.get("exemplar")]
    assert found and all("_bucket" in t["expr"] for t in found)


def test_kustomize_builds_configmaps(kubectl):
    names = {}
    for folder in ("grafana", "prometheus"):
        proc = run([kubectl, "kustomize", str(MONITORING / folder)])
        assert proc.returncode == 0, proc.stderr
        for doc in yaml.safe_load_all(proc.stdout):
            assert doc["kind"] == "ConfigMap"
            names[doc["metadata"]["name"].rsplit("-", 1)[0]] = doc["data"]
    # the names k8s/monitoring mounts
    assert set(names) == {"grafana-provisioning-datasources", "grafana-provisioning-dashboards", "grafana-dashboards",
                          "prometheus-config", "prometheus-rules"}
    assert set(names["grafana-dashboards"]) == EXPECTED
    assert set(names["prometheus-config"]) == {"prometheus.yml"}
    assert set(names["prometheus-rules"]) == {"recording.yml", "alerts.yml"}
    total = sum(len(v) for v in names["grafana-dashboards"].values())
    assert total < 900_000, "dashboards ConfigMap too close to the 1 MiB limit"
