#!/usr/bin/env python3
"""Writes the vid2mp3 Grafana dashboards (monitoring/grafana/dashboards/*.json).

The JSON files are committed and provisioned as they are; this script is their source, so that
layout, datasources, units and templating stay uniform. After editing it run

    python monitoring/grafana/generate_dashboards.py          # rewrite the JSON files
    python monitoring/grafana/generate_dashboards.py --check  # exit 1 if a file is out of date

tests/monitoring checks that the JSON files are what this script produces, and lints them.
Only the standard library is used: a dashboard library would bring its own object model for what
here is a handful of panel shapes, and the JSON it writes is what Grafana imports anyway.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace="$namespace"'
SERVICES = "auth|gateway|converter|notification"
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


# ----------------------------------------------------------------------------- building blocks
class Board:
    """Collects panels and places them on the 24-column grid, left to right, top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def _place(self, w: int, h: int) -> dict:
        if self._x + w > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        pos = {"x": self._x, "y": self._y, "w": w, "h": h}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self._x:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        self.panels.append({
            "type": "row", "title": title, "collapsed": False, "datasource": DS, "panels": [],
            "id": len(self.panels) + 1, "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
        })
        self._y += 1

    def add(self, panel: dict, w: int, h: int) -> None:
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = self._place(w, h)
        self.panels.append(panel)


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           exemplar: bool = False, fmt: str = "time_series") -> dict:
    return {
        "refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto",
        "range": not instant, "instant": instant, "exemplar": exemplar, "format": fmt,
        "editorMode": "code",
    }


def _targets(queries: list) -> list[dict]:
    out = []
    for i, q in enumerate(queries):
        if isinstance(q, str):
            q = (q, "")
        expr, legend, *rest = q
        opts = rest[0] if rest else {}
        out.append(target(expr, legend, ref=chr(ord("A") + i), **opts))
    return out


def _thresholds(steps: list | None, base: str = "green") -> dict:
    out = [{"color": base, "value": None}]
    for value, color in steps or []:
        out.append({"color": color, "value": value})
    return {"mode": "absolute", "steps": out}


def timeseries(title: str, description: str, queries: list, unit: str, *,
               thresholds: list | None = None, stack: bool = False, min0: bool = True,
               decimals: int | None = None) -> dict:
    defaults: dict = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "thresholds": _thresholds(thresholds),
        "custom": {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 40,
            "showPoints": "never", "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line+area" if thresholds else "off"},
        },
    }
    if min0:
        defaults["min"] = 0
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DS,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title: str, description: str, queries: list, unit: str, *, thresholds: list | None = None,
         base: str = "green", decimals: int | None = None, color_mode: str = "background") -> dict:
    defaults: dict = {"unit": unit, "thresholds": _thresholds(thresholds, base), "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat", "title": title, "description": description, "datasource": DS,
        "targets": _targets([(q, legend, {"instant": True}) for q, legend in
                             [(q, "") if isinstance(q, str) else q for q in queries]]),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": color_mode, "graphMode": "none", "textMode": "value_and_name",
                    "justifyMode": "auto", "orientation": "auto"},
    }


def table(title: str, description: str, expr: str, unit: str, *, thresholds: list | None = None,
          hide: tuple[str, ...] = ("Time", "__name__")) -> dict:
    return {
        "type": "table", "title": title, "description": description, "datasource": DS,
        "targets": [target(expr, instant=True, fmt="table")],
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": _thresholds(thresholds)}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "transformations": [{"id": "organize", "options": {"excludeByName": {k: True for k in hide}}}],
    }


def state_timeline(title: str, description: str, expr: str, legend: str) -> dict:
    return {
        "type": "state-timeline", "title": title, "description": description, "datasource": DS,
        "targets": _targets([(expr, legend)]),
        "fieldConfig": {"defaults": {
            "unit": "none", "color": {"mode": "thresholds"},
            "thresholds": _thresholds([(1, "red")], base="transparent"),
            "mappings": [{"type": "value", "options": {"1": {"text": "firing", "color": "red"}}}],
        }, "overrides": []},
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                    "legend": {"displayMode": "list", "placement": "bottom"}},
    }


def var_datasource() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0, "refresh": 1,
            "regex": "", "options": [], "includeAll": False, "multi": False}


def var_query(name: str, label: str, query: str, *, multi: bool = False) -> dict:
    var = {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
        "refresh": 2, "sort": 1, "hide": 0, "regex": "", "options": [],
        "includeAll": multi, "multi": multi,
    }
    if multi:
        var["allValue"] = ".*"
        var["current"] = {"text": ["All"], "value": ["$__all"]}
    return var


def namespace_var(metric: str) -> dict:
    v = var_query("namespace", "Namespace / environment", f"label_values({metric}, namespace)")
    return v


def dashboard(uid: str, title: str, description: str, board: Board, variables: list[dict],
              links: bool = True) -> dict:
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["vid2mp3"], "timezone": "browser", "editable": True, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": [{
            "name": "Alerts", "enable": True, "iconColor": "red", "datasource": DS,
            "expr": f'ALERTS{{alertstate="firing", {NS}}}', "titleFormat": "{{alertname}}",
            "textFormat": "{{alertname}} ({{severity}})", "step": "60s",
        }]},
        "templating": {"list": variables},
        "links": [{"type": "dashboards", "tags": ["vid2mp3"], "asDropdown": True, "title": "vid2mp3",
                   "includeVars": True, "keepTime": True}] if links else [],
        "panels": board.panels,
    }


# ----------------------------------------------------------------------------- dashboards
def service_overview() -> dict:
    sel = f'{NS}, service=~"$service"'
    rsel = f'{NS}, service=~"$service", route=~"$route"'
    b = Board()
    b.row("Golden signals per service")
    b.add(stat("Traffic", "Requests per second answered by each HTTP service (5m rate).",
               [(f"namespace_service:http_requests:rate5m{{{sel}}}", "{{service}}")], "reqps",
               color_mode="none"), 6, 5)
    b.add(stat("Errors (5xx share)", "Share of answers with a 5xx status per service over 5 minutes. "
               "The API availability SLO allows 0.1% on the gateway.",
               [(f"namespace_service:http_request_error:ratio_rate5m{{{sel}}}", "{{service}}")], "percentunit",
               thresholds=[(0.001, "orange"), (0.01, "red")], decimals=2), 6, 5)
    b.add(stat("Latency p99", "99th percentile of the time to answer, per service, over 5 minutes.",
               [(f'namespace_service:http_request_duration_seconds:quantile_rate5m{{{sel}, quantile="0.99"}}',
                 "{{service}}")], "s", thresholds=[(1, "orange"), (5, "red")]), 6, 5)
    b.add(stat("Targets up", "Scrape targets answering per job; red when a job has none left.",
               [(f'sum by (job) (up{{{NS}, job=~"{SERVICES}|rabbitmq"}})', "{{job}}")], "none",
               thresholds=[(1, "green")], base="red"), 6, 5)

    b.row("RED per route")
    b.add(timeseries("Requests by route and status class",
                     "Request rate per service, method, route and status class (2xx, 4xx, 5xx).",
                     [(f"namespace_service_route_status:http_requests:rate5m{{{rsel}}}",
                       "{{service}} {{method}} {{route}} {{status_class}}")], "reqps"), 12, 8)
    b.add(timeseries("5xx ratio by route",
                     "Share of 5xx answers per route (5m). 4xx are the clients' errors and do not count.",
                     [(f"namespace_service_route:http_request_error:ratio_rate5m{{{rsel}}}",
                       "{{service}} {{method}} {{route}}")], "percentunit",
                     thresholds=[(0.001, "orange"), (0.01, "red")]), 12, 8)
    b.add(timeseries("Latency p50 / p99 by route",
                     "Median and 99th percentile answer time per route, from the recorded 5m histograms.",
                     [(f'namespace_service_route:http_request_duration_seconds:quantile_rate5m{{{rsel}, quantile=~"0.5|0.99"}}',
                       "p{{quantile}} {{service}} {{method}} {{route}}")], "s",
                     thresholds=[(1, "orange"), (5, "red")]), 12, 8)
    b.add(timeseries("Latency p99 with trace exemplars",
                     "p99 answer time per route computed from the raw buckets at the panel resolution; the "
                     "dots are exemplars, click one to open its trace.",
                     [(f"histogram_quantile(0.99, sum by (le, service, route) "
                       f"(rate(http_request_duration_seconds_bucket{{{rsel}}}[$__rate_interval])))",
                       "{{service}} {{route}}", {"exemplar": True})], "s"), 12, 8)
    b.add(table("Busiest routes", "The ten busiest routes right now with their request rate.",
                f"topk(10, namespace_service_route:http_requests:rate5m{{{rsel}}})", "reqps"), 24, 7)

    b.row("Authentication")
    b.add(timeseries("Logins by result",
                     "Login attempts per second: success, bad_credentials, rate_limited (a locked account and "
                     "address pair, or address), too_busy (no hashing place in time); and the logins slowed "
                     "down because their account failed often from anywhere (never refused).",
                     [(f"sum by (result) (rate(auth_logins_total{{{NS}}}[$__rate_interval]))", "{{result}}"),
                      (f"sum(rate(auth_login_slowdowns_total{{{NS}}}[$__rate_interval]))", "slowed down")],
                     "ops"), 8, 7)
    b.add(timeseries("Registrations by result",
                     "Registration attempts per second: created, duplicate, invalid, rate_limited, too_busy.",
                     [(f"sum by (result) (rate(auth_registrations_total{{{NS}}}[$__rate_interval]))", "{{result}}")],
                     "ops"), 8, 7)
    b.add(timeseries("Token checks by result",
                     "Bearer tokens the gateway verified with auth's public keys (valid, invalid, keys_unavailable), "
                     "requests made with an API key, checked by auth each time (valid, invalid, read_only: a read "
                     "key refused a change, auth_unavailable), and its fetches of those keys (JWKS).",
                     [(f"sum by (result) (rate(gateway_token_verifications_total{{{NS}}}[$__rate_interval]))",
                       "gateway {{result}}"),
                      (f"sum by (result) (rate(gateway_api_key_authentications_total{{{NS}}}[$__rate_interval]))",
                       "API key {{result}}"),
                      (f"sum by (result) (rate(gateway_jwks_fetches_total{{{NS}}}[$__rate_interval]))",
                       "JWKS fetch {{result}}")], "ops"), 8, 7)

    b.add(timeseries("Password hashing",
                     "argon2id hashes running against the places auth allows (ARGON2_MAX_CONCURRENT per process: "
                     "its memory limit follows from them), and hashes per second that waited for a place or were "
                     "refused after ARGON2_WAIT_SECONDS (503 too_busy). Refusals mean too few auth pods or a flood.",
                     [(f"sum(auth_password_hashes_in_progress{{{NS}}})", "running"),
                      (f"sum(auth_password_hash_places{{{NS}}})", "places"),
                      (f"sum(rate(auth_password_hash_queued_total{{{NS}}}[$__rate_interval]))", "waited /s"),
                      (f"sum(rate(auth_password_hash_refused_total{{{NS}}}[$__rate_interval]))", "refused /s")],
                     "short"), 12, 7)
    b.add(timeseries("Password hash wait p99",
                     "Time a hash waited for its place (99th percentile); ARGON2_WAIT_SECONDS is the most it waits.",
                     [(f"histogram_quantile(0.99, sum by (le) "
                       f"(rate(auth_password_hash_wait_seconds_bucket{{{NS}}}[$__rate_interval])))", "p99")],
                     "s", thresholds=[(0.5, "orange"), (1, "red")]), 12, 7)

    b.row("Slow and hostile clients")
    b.add(timeseries("Client connections closed or refused", "Connections auth and the gateway closed for "
                     "being too slow, per second, by why: idle (silent from the start or for HTTP_IDLE_TIMEOUT_SECONDS "
                     "mid-exchange), headers or body (request head or small body not complete in time), slow (a "
                     "streamed body, download or event stream below HTTP_MIN_TRANSFER_RATE_BYTES); and requests "
                     "refused before any thread: per_address (over HTTP_MAX_CONNECTIONS_PER_ADDRESS), body_too_large.",
                     [(f"sum by (job, reason) (rate(vid2mp3_http_client_timeouts_total{{{NS}}}[$__rate_interval]))",
                       "closed: {{job}} {{reason}}"),
                      (f"sum by (job, reason) (rate(vid2mp3_http_refused_total{{{NS}}}[$__rate_interval]))",
                       "refused: {{job}} {{reason}}")], "ops"), 12, 7)
    b.add(timeseries("Requests being read, and long exchanges", "Requests whose head or small body the event "
                     "loop is still reading (they cost a socket, no thread), and the gateway's downloads and "
                     "uploads in progress (each holds a thread of its own place: DOWNLOADS_MAX, UPLOADS_MAX).",
                     [(f"sum by (job) (vid2mp3_http_connections_reading{{{NS}}})", "reading: {{job}}"),
                      (f"sum(gateway_downloads_in_progress{{{NS}}})", "downloads"),
                      (f"sum(gateway_uploads_in_progress{{{NS}}})", "uploads")], "short"), 12, 7)

    b.row("Saturation and versions")
    b.add(timeseries("CPU per process", "CPU cores used by each scraped process (1 = one full core).",
                     [(f'sum by (job, instance) (rate(process_cpu_seconds_total{{{NS}, job=~"{SERVICES}"}}[$__rate_interval]))',
                       "{{job}} {{instance}}")], "percentunit"), 8, 7)
    b.add(timeseries("Resident memory per process", "Resident set size of each scraped process.",
                     [(f'process_resident_memory_bytes{{{NS}, job=~"{SERVICES}"}}', "{{job}} {{instance}}")],
                     "bytes"), 8, 7)
    b.add(table("Running versions", "Version and git commit of every running process (vid2mp3_build_info).",
                f"vid2mp3_build_info{{{NS}}}", "none", hide=("Time", "__name__", "Value")), 8, 7)

    return dashboard(
        "vid2mp3-services", "vid2mp3 / Service overview",
        "Is the HTTP API healthy? Rate, errors and duration (RED) per service and route for auth and "
        "gateway, with the golden signals at the top, authentication outcomes, and CPU, memory and "
        "running versions of every process. Start here when users report errors or slowness.",
        b, [var_datasource(), namespace_var("vid2mp3_build_info"),
            var_query("service", "Service", f"label_values(http_requests_total{{{NS}}}, service)", multi=True),
            var_query("route", "Route", f'label_values(http_requests_total{{{NS}, service=~"$service"}}, route)',
                      multi=True)])


def pipeline() -> dict:
    b = Board()
    b.row("Now")
    b.add(stat("Uploads accepted", "Uploads accepted per second (5m).",
               [f'sum(rate(gateway_uploads_total{{{NS}, result="accepted"}}[5m]))'], "ops", color_mode="none"), 4, 5)
    b.add(stat("Videos waiting", "Messages ready in the video queue.",
               [f'sum(namespace_queue:rabbitmq_queue_messages_ready:max{{{NS}, queue=~"(.+[.])?video"}})'], "none",
               thresholds=[(50, "orange"), (500, "red")]), 4, 5)
    b.add(stat("Converting now", "Jobs in ffmpeg right now, all converters.",
               [f"sum(converter_jobs_in_progress{{{NS}}})"], "none", color_mode="none"), 4, 5)
    b.add(stat("Finished jobs done", "Share of finished jobs (5m) that ended done; failed includes the users' "
               "bad media, so it can be below the SLO without a system fault.",
               [f"namespace:converter_jobs_success:ratio_rate5m{{{NS}}}"], "percentunit",
               thresholds=[(0.9, "orange"), (0.99, "green")], base="red", decimals=1), 4, 5)
    b.add(stat("Dead letters", "Messages parked in the dead-letter queues (<queue>.dead).",
               [f'sum(namespace_queue:rabbitmq_queue_messages:max{{{NS}, queue=~".*[.]dead"}})'], "none",
               thresholds=[(1, "red")]), 4, 5)
    b.add(stat("Outbox backlog", "Jobs stored by the gateway whose message the broker has not confirmed yet.",
               [f"max(gateway_outbox_backlog{{{NS}}})"], "none", thresholds=[(1, "orange"), (20, "red")]), 4, 5)

    b.row("Intake")
    b.add(timeseries("Uploads by result", "Uploads per second: accepted (stored, job created) or rejected.",
                     [(f"sum by (result) (rate(gateway_uploads_total{{{NS}}}[$__rate_interval]))", "{{result}}")],
                     "ops"), 8, 7)
    b.add(timeseries("Upload volume", "Bytes of video accepted per second.",
                     [(f"sum(rate(gateway_upload_bytes_total{{{NS}}}[$__rate_interval]))", "uploaded")],
                     "Bps"), 8, 7)
    b.add(timeseries("Outbox", "Backlog of stored-but-unpublished jobs and the rate at which the relay "
                     "publishes them late; a backlog that stays above 0 pages (OutboxBacklogNotDraining).",
                     [(f"max(gateway_outbox_backlog{{{NS}}})", "backlog"),
                      (f"sum(rate(gateway_outbox_published_total{{{NS}}}[$__rate_interval]))", "published late /s")],
                     "short", thresholds=[(1, "orange")]), 8, 7)
    b.add(timeseries("Resumable (tus) uploads", "tus uploads created and not finished (in progress), and per "
                     "hour: created, resumed (a PATCH past 0 after a HEAD: a client came back after a cut), "
                     "completed (job made), terminated (DELETE) and expired (unfinished past "
                     "TUS_UPLOAD_EXPIRY_SECONDS, removed by the janitor).",
                     [(f"max(vid2mp3_tus_uploads_in_progress{{{NS}}})", "in progress"),
                      (f"sum by (event) (increase(gateway_tus_uploads_total{{{NS}}}[1h]))", "{{event}} /h"),
                      (f'sum(namespace_reason:vid2mp3_storage_removed_files:increase1h{{{NS}, reason="tus_expired"}})',
                       "expired /h")],
                     "short"), 24, 7)
    b.add(timeseries("Reused and replayed uploads", "Uploads done at once with the MP3 of an identical earlier "
                     "upload (no conversion, nothing stored twice), and repeats of an Idempotency-Key: answered "
                     "with the first job (replayed) or 409 while the first still uploads (conflict).",
                     [(f"sum(rate(gateway_uploads_reused_total{{{NS}}}[$__rate_interval]))", "reused"),
                      (f"sum by (result) (rate(gateway_idempotent_replays_total{{{NS}}}[$__rate_interval]))",
                       "idempotency {{result}}")], "ops"), 8, 7)
    b.add(timeseries("Outputs per job", "How many outputs uploads ask for (the `outputs` field; 1 without it): the "
                     "mean, and uploads with more than one a second. Each output is one more encode and result file.",
                     [(f"sum(rate(gateway_job_outputs_sum{{{NS}}}[$__rate_interval])) / "
                       f"sum(rate(gateway_job_outputs_count{{{NS}}}[$__rate_interval]))", "outputs per job (mean)"),
                      (f"sum(rate(gateway_job_outputs_count{{{NS}}}[$__rate_interval])) - "
                       f'sum(rate(gateway_job_outputs_bucket{{{NS}, le="1.0"}}[$__rate_interval]))',
                       "jobs with several outputs /s")], "short"), 8, 7)
    b.add(timeseries("Uploads by preset", "Accepted uploads per second by the preset they named: a built-in "
                     "preset's name, custom (any user's own preset) or none.",
                     [(f"sum by (preset) (rate(gateway_upload_presets_total{{{NS}}}[$__rate_interval]))", "{{preset}}")],
                     "ops"), 8, 7)

    b.row("Queues")
    b.add(timeseries("Queue depth", "Messages ready (waiting) and unacked (being worked on) in the work queues.",
                     [(f'namespace_queue:rabbitmq_queue_messages_ready:max{{{NS}, queue!~".*[.](dead|retry[.][0-9]+ms)"}}',
                       "{{queue}} ready"),
                      (f'namespace_queue:rabbitmq_queue_messages_unacked:max{{{NS}, queue!~".*[.](dead|retry[.][0-9]+ms)"}}',
                       "{{queue}} unacked")], "short"), 8, 7)
    b.add(timeseries("Queue wait (publish to pick-up)", "How long videos waited in the queue before a converter "
                     "took them (p50/p90/p99). RabbitMQ 3.10 has no head-message age for quorum queues, so "
                     "this is the age signal; above 15 min for p90 opens a ticket (QueueWaitTooLong).",
                     [(f"namespace:converter_queue_wait_seconds:quantile_rate5m{{{NS}}}", "p{{quantile}}")],
                     "s", thresholds=[(900, "red")]), 8, 7)
    b.add(timeseries("Consumers", "Consumers attached to each work queue; 0 with waiting messages pages.",
                     [(f'namespace_queue:rabbitmq_queue_consumers:max{{{NS}, queue!~".*[.](dead|retry[.][0-9]+ms)"}}', "{{queue}}")],
                     "short"), 8, 7)

    b.row("Conversions")
    b.add(timeseries("Conversions by result", "Conversion attempts per second by result: success, failed "
                     "(user's media), retried (transient, will run again), dead_lettered (system, gave up).",
                     [(f"namespace_result:converter_jobs:rate5m{{{NS}}}", "{{result}}")], "ops", stack=True), 8, 7)
    b.add(timeseries("Conversion duration", "Time ffmpeg spent per job (p50/p90/p99).",
                     [(f"namespace:converter_conversion_duration_seconds:quantile_rate5m{{{NS}}}", "p{{quantile}}")],
                     "s"), 8, 7)
    b.add(timeseries("End-to-end latency", "Upload accepted to MP3 ready (p50/p90/p99). The latency SLO wants "
                     "95% of jobs under 300 s; dots are exemplars linking to the job's trace.",
                     [(f"namespace:converter_job_e2e_latency_seconds:quantile_rate5m{{{NS}}}", "p{{quantile}}"),
                      (f"histogram_quantile(0.95, sum by (le) (rate(converter_job_e2e_latency_seconds_bucket{{{NS}}}[$__rate_interval])))",
                       "p95 (exemplars)", {"exemplar": True})],
                     "s", thresholds=[(300, "red")]), 8, 7)
    b.add(timeseries("Throughput (media seconds per second)", "Seconds of audio produced per wall-clock second "
                     "by all converters: 60 means one hour of media converted per minute.",
                     [(f"namespace:converter_audio_seconds:rate5m{{{NS}}}", "media s/s")], "short"), 8, 7)
    b.add(timeseries("Converter I/O", "Bytes of video read and MP3 written per second, and bytes fetched by URL "
                     "imports (stored as videos).",
                     [(f"sum(rate(converter_bytes_in_total{{{NS}}}[$__rate_interval]))", "video in"),
                      (f"sum(rate(converter_bytes_out_total{{{NS}}}[$__rate_interval]))", "mp3 out"),
                      (f"sum(rate(converter_import_bytes_total{{{NS}}}[$__rate_interval]))", "url imports in")],
                     "Bps"), 8, 7)
    b.add(timeseries("Jobs in progress", "Jobs being converted right now per converter process.",
                     [(f"converter_jobs_in_progress{{{NS}}}", "{{instance}}")], "short"), 8, 7)
    b.add(timeseries("Conversions by format and option", "Finished conversions per second by output format "
                     "(mp3, m4a, opus, flac, wav) and by option the upload gave (bitrate, quality, trim, normalize, "
                     "tags, cover...; format counts when not mp3).",
                     [(f"sum by (format) (rate(converter_outputs_total{{{NS}}}[$__rate_interval]))", "{{format}}"),
                      (f"sum by (option) (rate(converter_option_uses_total{{{NS}}}[$__rate_interval]))",
                       "option {{option}}")], "ops"), 8, 7)
    b.add(timeseries("URL imports", "Fetches of URL imports (POST /jobs with a source_url) per second by result: "
                     "fetched (stored, the job queued), failed (a 4xx, a page, too large, too slow, a forbidden "
                     "address), retried (5xx, stall, reset), cancelled (the job went while fetching).",
                     [(f"sum by (result) (rate(converter_imports_total{{{NS}}}[$__rate_interval]))", "{{result}}")],
                     "ops"), 8, 7)
    b.add(timeseries("URL import duration", "How long one URL import's fetch took (fetched or failed), median and "
                     "95th percentile.",
                     [(f"histogram_quantile(0.5, sum by (le) (rate(converter_import_duration_seconds_bucket{{{NS}}}"
                       "[$__rate_interval])))", "p50"),
                      (f"histogram_quantile(0.95, sum by (le) (rate(converter_import_duration_seconds_bucket{{{NS}}}"
                       "[$__rate_interval])))", "p95")], "s"), 8, 7)
    b.add(timeseries("Results per job", "Result files per converted job: its outputs (mp3 and opus and flac "
                     "from one upload), one per chapter with split=chapters. Mean and 95th percentile.",
                     [(f"sum(rate(converter_results_per_job_sum{{{NS}}}[$__rate_interval])) / "
                       f"sum(rate(converter_results_per_job_count{{{NS}}}[$__rate_interval]))", "mean"),
                      (f"histogram_quantile(0.95, sum by (le) (rate(converter_results_per_job_bucket{{{NS}}}"
                       f"[$__rate_interval])))", "p95")], "short"), 8, 7)

    b.row("Retries, dead letters, notifications")
    b.add(timeseries("Retries and dead letters", "Transient failures sent to a retry queue and jobs "
                     "dead-lettered after their last retry (per second).",
                     [(f'sum by (result) (rate(converter_jobs_total{{{NS}, result=~"retried|dead_lettered"}}[$__rate_interval]))',
                       "{{result}}")], "ops", thresholds=[(0.0001, "red")]), 8, 7)
    b.add(timeseries("Media tool system faults by tool and cause", "ffmpeg runs (and in-process probes) ended by a signal "
                     "(SIGKILL is usually the OOM killer) or a system fault, per second; each one was retried. "
                     "More than 5 of one tool in 30 minutes opens a ticket (ConverterChildFailures).",
                     [(f"sum by (tool, cause) (rate(converter_child_failures_total{{{NS}}}[$__rate_interval]))",
                       "{{tool}} {{cause}}")], "ops", thresholds=[(0.003, "red")]), 8, 7)
    b.add(timeseries("Retry delay queues", "Messages waiting out their back-off in the delay queues "
                     "(<queue>.retry.<ms>); they flow back to the work queue when their TTL expires.",
                     [(f'namespace_queue:rabbitmq_queue_messages:max{{{NS}, queue=~".*[.]retry[.][0-9]+ms"}}',
                       "{{queue}}")], "short"), 8, 7)
    b.add(timeseries("Dead-letter queues", "Messages parked in the dead-letter queues (<queue>.dead) after "
                     "their last retry. Anything here opens a ticket (DeadLetterQueueNotEmpty).",
                     [(f'namespace_queue:rabbitmq_queue_messages:max{{{NS}, queue=~".*[.]dead"}}',
                       "{{queue}}")], "short", thresholds=[(1, "red")]), 12, 7)
    b.add(timeseries("Emails by result", "Notification emails per second: sent, failed (SMTP error), "
                     "duplicate (already sent for this job, skipped).",
                     [(f"sum by (result) (rate(notification_emails_total{{{NS}}}[$__rate_interval]))", "{{result}}")],
                     "ops"), 12, 7)

    b.row("Cancels, deletes, live events, the web app")
    b.add(timeseries("Cancels and deletes", "Jobs cancelled (POST /jobs/<id>/cancel that stopped a queued or "
                     "converting job) and jobs deleted with their files (DELETE /jobs/<id>), per second.",
                     [(f"sum(rate(gateway_job_cancels_total{{{NS}}}[$__rate_interval]))", "cancelled"),
                      (f"sum(rate(gateway_job_deletes_total{{{NS}}}[$__rate_interval]))", "deleted")], "ops"), 12, 7)
    b.add(timeseries("Open event streams per gateway", "Live job event streams (GET /jobs/<id>/events) open on "
                     "each gateway; beyond EVENT_STREAMS_MAX a gateway answers 503 too_busy.",
                     [(f"sum by (instance) (gateway_event_streams{{{NS}}})", "{{instance}}")], "short"), 12, 7)
    b.add(timeseries("Event streams: how they end, and refusals", "Live event streams ended per second, by why: "
                     "final (the job ended), deleted, client_gone (noticed at the next poll), error, closed (by the "
                     "server: HEAD, a failed write), abandoned (never sent), revoked (its key or token no longer "
                     "holds); and streams refused with 429 because the user already held EVENT_STREAMS_PER_USER on "
                     "that gateway.",
                     [(f"sum by (reason) (rate(gateway_event_stream_ends_total{{{NS}}}[$__rate_interval]))",
                       "ended: {{reason}}"),
                      (f"sum(rate(gateway_event_streams_user_limited_total{{{NS}}}[$__rate_interval]))",
                       "refused: per user")], "ops"), 12, 7)
    b.add(timeseries("Web app page loads", "Loads of the web app's page (GET /, revalidations included) per "
                     "second: how many people use the browser rather than the API.",
                     [(f"sum(rate(gateway_web_page_loads_total{{{NS}}}[$__rate_interval]))", "page loads")],
                     "reqps"), 12, 7)
    b.add(timeseries("Job status answers: kept or built", "GET /jobs/<id> answered 200 per second, by how: cached "
                     "(the body this gateway built for that revision of the job, sent again after a read of the "
                     "revision alone) or built (the job read whole and its view made). Mostly built: clients poll "
                     "jobs that keep changing, or their polls spread over many gateways.",
                     [(f"sum by (how) (rate(gateway_job_views_total{{{NS}}}[$__rate_interval]))", "{{how}}")],
                     "reqps"), 12, 7)
    b.add(timeseries("Polls per revision read", "Polls of a job's status (conditional, or of a job that stood "
                     "still) answered by each read of job revisions the gateways sent to MongoDB: polls waiting at "
                     "the same moment share one read. 1 when polls are sparse; it grows with the poll rate, and the "
                     "database's load grows slower than the polls.",
                     [(f"sum(rate(gateway_revision_reads_sum{{{NS}}}[$__rate_interval])) / "
                       f"sum(rate(gateway_revision_reads_count{{{NS}}}[$__rate_interval]))", "polls per read")],
                     "short"), 12, 7)

    b.row("Uploads in progress and refused")
    b.add(timeseries("Uploads in progress per gateway", "Upload bodies each gateway is receiving now; beyond "
                     "UPLOADS_MAX a gateway answers 503 too_busy (each upload holds one of its threads).",
                     [(f"sum by (instance) (gateway_uploads_in_progress{{{NS}}})", "{{instance}}")], "short"), 12, 7)
    b.add(timeseries("Uploads refused: quota and too busy", "Uploads refused with 429 quota_exceeded, by the limit "
                     "reached (USER_MAX_ACTIVE_JOBS, USER_MAX_STORED_BYTES, USER_MAX_UPLOADS_PER_DAY), and requests "
                     "refused with 503 too_busy, by what was full (uploads, event_streams, downloads), per second.",
                     [(f"sum by (limit) (rate(gateway_quota_rejections_total{{{NS}}}[$__rate_interval]))",
                       "quota: {{limit}}"),
                      (f"sum by (what) (rate(gateway_too_busy_total{{{NS}}}[$__rate_interval]))", "too busy: {{what}}")],
                     "ops"), 12, 7)
    b.add(timeseries("Results refused or stopped for their size", "Jobs failed for the size of their result, per "
                     "second: refused before ffmpeg started (the upper bound predicted from the probed duration and "
                     "the output's rate passed the owner's USER_MAX_STORED_BYTES left, or MAX_OUTPUT_BYTES), or "
                     "stopped while it ran (the output grew past twice its prediction, or past one of those limits: "
                     "a file that decodes to more than its header says).",
                     [(f"sum by (outcome, limit) (rate(converter_output_limited_total{{{NS}}}[$__rate_interval]))",
                       "{{outcome}}: {{limit}}")], "ops"), 24, 7)

    b.row("Webhooks and signed links")
    b.add(timeseries("Webhook deliveries by result", "Webhook POSTs per second: delivered (2xx), failed (non-2xx, "
                     "timeout or connection error; retried through the delay queues), gave_up (the last retry "
                     "failed: dead-lettered), refused (non-public target), duplicate (already delivered, skipped).",
                     [(f"sum by (result) (rate(notification_webhooks_total{{{NS}}}[$__rate_interval]))", "{{result}}")],
                     "ops"), 12, 7)
    b.add(timeseries("Signed-link downloads by result", "GET /links/<token> per second: ok (file sent), forged "
                     "(403: tampered link), expired (410: past retention), revoked (410: job deleted or file gone).",
                     [(f"sum by (result) (rate(gateway_link_downloads_total{{{NS}}}[$__rate_interval]))", "{{result}}")],
                     "ops"), 12, 7)
    b.add(timeseries("Webhook places in use", "Webhook deliveries in progress against the places of all "
                     "notification pods (WEBHOOK_CONCURRENCY each; all busy for 15 minutes alerts), deliveries "
                     "deferred per second (their user already had WEBHOOK_MAX_PER_TENANT in progress) and attempts "
                     "cut per second at the whole-exchange deadline (WEBHOOK_TIMEOUT_SECONDS).",
                     [(f"sum(notification_webhooks_in_flight{{{NS}}})", "in progress"),
                      (f"sum(notification_webhook_slots{{{NS}}})", "places"),
                      (f"sum(rate(notification_webhooks_deferred_total{{{NS}}}[$__rate_interval]))", "deferred /s"),
                      (f"sum(rate(notification_webhook_timeouts_total{{{NS}}}[$__rate_interval]))", "cut /s")],
                     "short"), 12, 7)
    b.add(timeseries("Webhook attempt duration p99", "Time of one webhook attempt, the whole exchange (99th "
                     "percentile); WEBHOOK_TIMEOUT_SECONDS is the most it takes, a slow receiver is cut there.",
                     [(f"histogram_quantile(0.99, sum by (le) "
                       f"(rate(notification_webhook_duration_seconds_bucket{{{NS}}}[$__rate_interval])))", "p99")],
                     "s", thresholds=[(5, "orange"), (10, "red")]), 12, 7)

    # The janitor's figures, exposed by every gateway replica alike: the recording rules take max, never sum.
    b.row("Storage")
    b.add(stat("Stored", "Bytes of videos and MP3s stored, at the janitor's last round.",
               [f"namespace:vid2mp3_storage_bytes:sum{{{NS}}}"], "bytes", color_mode="none"), 6, 5)
    b.add(stat("Capacity used", "Stored bytes as a share of the storage capacity (STORAGE_CAPACITY_BYTES).",
               [f"namespace:vid2mp3_storage_bytes:sum{{{NS}}} / namespace:vid2mp3_storage_capacity_bytes:max{{{NS}}}"],
               "percentunit", thresholds=[(0.7, "orange"), (0.9, "red")], decimals=1), 6, 5)
    b.add(stat("Predicted in 24 h", "Stored bytes in 24 hours at the trend of the last 6 hours (predict_linear), "
               "as a share of the capacity; above 100% for 30 minutes opens a ticket (StorageFullIn24h).",
               [f"namespace:vid2mp3_storage_bytes:predict_linear6h_24h{{{NS}}} / namespace:vid2mp3_storage_capacity_bytes:max{{{NS}}}"],
               "percentunit", thresholds=[(0.8, "orange"), (1, "red")], decimals=1), 6, 5)
    b.add(stat("Since last janitor round", "Time since the janitor last finished a round (every 5 minutes); "
               "above 30 minutes opens a ticket (JanitorNotRunning).",
               [f"time() - namespace:vid2mp3_janitor_last_run_timestamp_seconds:max{{{NS}}}"], "s",
               thresholds=[(900, "orange"), (1800, "red")]), 6, 5)
    b.add(timeseries("Stored bytes by kind, capacity, prediction", "Bytes stored per kind (videos, mp3s) at "
                     "each janitor round, the capacity, and the total predicted in 24 hours from the last 6 hours.",
                     [(f"namespace_kind:vid2mp3_storage_bytes:max{{{NS}}}", "{{kind}}"),
                      (f"namespace:vid2mp3_storage_capacity_bytes:max{{{NS}}}", "capacity"),
                      (f"namespace:vid2mp3_storage_bytes:predict_linear6h_24h{{{NS}}}", "total predicted in 24 h")],
                     "bytes"), 8, 7)
    b.add(timeseries("Stored files by kind", "Files stored per kind (videos, mp3s), unfinished uploads included.",
                     [(f"namespace_kind:vid2mp3_storage_files:max{{{NS}}}", "{{kind}}")], "short"), 8, 7)
    b.add(timeseries("Files removed per hour by reason", "Files the janitor removed in the last hour: "
                     "video_retention, result_retention, abandoned_upload, abandoned_mp3, stale_work_dir.",
                     [(f"namespace_reason:vid2mp3_storage_removed_files:increase1h{{{NS}}}", "{{reason}}")],
                     "short"), 8, 7)
    b.add(timeseries("Jobs expired per hour", "Jobs whose files retention removed in the last hour "
                     "(status expired; their download answers 410).",
                     [(f"namespace:vid2mp3_jobs_expired:increase1h{{{NS}}}", "expired")], "short"), 8, 7)
    b.add(timeseries("Uploads in progress", "Videos being received at the janitor's last round (upload "
                     "records without a job yet); one that stays is an abandoned upload, removed after JANITOR_GRACE_SECONDS.",
                     [(f"max(vid2mp3_storage_uploads_in_progress{{{NS}}})", "uploads")], "short"), 8, 7)
    b.add(timeseries("Time since last janitor round", "Seconds since the janitor last finished a round; "
                     "a saw-tooth up to JANITOR_INTERVAL_SECONDS when healthy.",
                     [(f"time() - namespace:vid2mp3_janitor_last_run_timestamp_seconds:max{{{NS}}}", "since last round")],
                     "s", thresholds=[(1800, "red")]), 8, 7)

    return dashboard(
        "vid2mp3-pipeline", "vid2mp3 / Conversion pipeline",
        "Is every upload becoming an MP3 and an email? Follows a job through the pipeline: uploads and "
        "the gateway outbox, the video and mp3 queues (depth, wait, consumers), conversions by result, "
        "conversion and end-to-end latency, throughput in media seconds per second, retries, media tool "
        "faults, dead letters and notification emails; then cancels, deletes and live event streams, webhook "
        "deliveries and signed-link downloads, and "
        "storage: bytes and files stored, capacity and the 24-hour prediction, the janitor's removals.",
        b, [var_datasource(), namespace_var("vid2mp3_build_info")])


def slo() -> dict:
    b = Board()
    slos = [  # name, error-ratio recording rule, budget-left recording rule, allowed error ratio
        ("API availability", "namespace:slo_api_errors", "namespace:slo_api_error_budget:remaining_30d", 0.001),
        ("Job success", "namespace:slo_job_errors", "namespace:slo_job_error_budget:remaining_30d", 0.001),
        ("Job latency (<= 300 s)", "namespace:slo_job_latency_errors",
         "namespace:slo_job_latency_error_budget:remaining_30d", 0.05),
    ]
    b.row("30-day SLO status")
    for name, ratio, budget, allowed in slos:
        objective = 1 - allowed
        b.add(stat(f"{name}: 30 days", f"Share of good events over the last 30 days; objective {objective:.1%}.",
                   [f"1 - {ratio}:ratio_rate30d{{{NS}}}"], "percentunit",
                   thresholds=[(objective, "green")], base="red", decimals=3), 4, 5)
        b.add(stat(f"{name}: budget left", "Error budget remaining in the 30-day window: 100% untouched, "
                   "0% spent, negative means the SLO is missed.",
                   [budget + f"{{{NS}}}"], "percentunit",
                   thresholds=[(0, "orange"), (0.5, "green")], base="red", decimals=1), 4, 5)

    b.row("Burn rates (1 = spending exactly the budget over 30 days)")
    for name, ratio, _budget, allowed in slos:
        queries = [(f"{ratio}:ratio_rate{w}{{{NS}}} / {allowed}", w) for w in WINDOWS]
        thresholds = [(1, "yellow"), (3, "orange"), (6, "red"), (14.4, "dark-red")]
        b.add(timeseries(f"{name}: burn rate per window",
                         "Error ratio divided by the allowed ratio, for every alert window. Pages fire when "
                         "1h and 5m are both above 14.4 or 6h and 30m above 6; tickets when 1d and 2h are "
                         "above 3 or 3d and 6h above 1 (the latency SLO only tickets, on 6h and 30m above 6).",
                         queries, "suffix:x", thresholds=thresholds, decimals=2), 8, 9)

    b.row("Alerts")
    b.add(state_timeline("SLO alert state", "Firing SLO burn-rate alerts (empty when all is well).",
                         f'max by (alertname, severity) (ALERTS{{{NS}, alertstate="firing", slo!=""}})',
                         "{{alertname}} ({{severity}})"), 12, 7)
    b.add(state_timeline("All vid2mp3 alerts", "Every firing vid2mp3 alert in this namespace.",
                         f'max by (alertname, severity) (ALERTS{{{NS}, alertstate="firing"}})',
                         "{{alertname}} ({{severity}})"), 12, 7)
    b.add(timeseries("Error ratios vs objective (1h)", "Raw error ratios over one hour; the orange line is the "
                     "0.1% allowed for API errors and dead letters, the red one the 5% allowed for slow jobs.",
                     [(f"namespace:slo_api_errors:ratio_rate1h{{{NS}}}", "API 5xx ratio"),
                      (f"namespace:slo_job_errors:ratio_rate1h{{{NS}}}", "jobs dead-lettered ratio"),
                      (f"namespace:slo_job_latency_errors:ratio_rate1h{{{NS}}}", "jobs slower than 300 s")],
                     "percentunit", thresholds=[(0.001, "orange"), (0.05, "red")], decimals=3), 24, 7)

    return dashboard(
        "vid2mp3-slo", "vid2mp3 / SLOs",
        "Are we keeping our promises? The three SLOs of monitoring/SLO.md (API availability 99.9%, job "
        "success 99.9%, 95% of jobs ready within 300 s; 30-day windows): attainment, error budget left, "
        "burn rate on every alert window (5m to 3d) and the state of the burn-rate alerts.",
        b, [var_datasource(), namespace_var("vid2mp3_build_info")])


def rabbitmq() -> dict:
    q = f'{NS}, queue=~"$queue"'
    b = Board()
    b.row("Broker")
    b.add(stat("Ready messages", "Messages waiting in the selected queues.",
               [f"sum(rabbitmq_queue_messages_ready{{{q}}})"], "none", color_mode="none"), 4, 5)
    b.add(stat("Unacked messages", "Messages delivered to consumers and not yet acknowledged.",
               [f"sum(rabbitmq_queue_messages_unacked{{{q}}})"], "none", color_mode="none"), 4, 5)
    b.add(stat("Consumers", "Consumers attached to the selected queues.",
               [f"sum(rabbitmq_queue_consumers{{{q}}})"], "none", color_mode="none"), 4, 5)
    b.add(stat("Connections", "Open client connections.", [f"sum(rabbitmq_connections{{{NS}}})"], "none",
               color_mode="none"), 4, 5)
    b.add(stat("Channels", "Open channels.", [f"sum(rabbitmq_channels{{{NS}}})"], "none", color_mode="none"), 4, 5)
    b.add(stat("Queues", "Queues declared on the broker.", [f"sum(rabbitmq_queues{{{NS}}})"], "none",
               color_mode="none"), 4, 5)

    b.row("Queues")
    b.add(timeseries("Messages ready per queue", "Waiting messages per queue.",
                     [(f"max by (vhost, queue) (rabbitmq_queue_messages_ready{{{q}}})", "{{queue}}")], "short"), 8, 8)
    b.add(timeseries("Messages unacked per queue", "Delivered, not yet acknowledged, per queue.",
                     [(f"max by (vhost, queue) (rabbitmq_queue_messages_unacked{{{q}}})", "{{queue}}")], "short"), 8, 8)
    b.add(timeseries("Consumers per queue", "Consumers per queue; retry and dead-letter queues have none by design.",
                     [(f"max by (vhost, queue) (rabbitmq_queue_consumers{{{q}}})", "{{queue}}")], "short"), 8, 8)

    b.row("Message rates")
    b.add(timeseries("Publish, deliver, ack (broker)", "Broker-wide messages per second: received from "
                     "publishers, confirmed to them, delivered to consumers and acknowledged by them.",
                     [(f"sum(rate(rabbitmq_global_messages_received_total{{{NS}}}[$__rate_interval]))", "published"),
                      (f"sum(rate(rabbitmq_global_messages_confirmed_total{{{NS}}}[$__rate_interval]))", "confirmed"),
                      (f"sum(rate(rabbitmq_global_messages_delivered_total{{{NS}}}[$__rate_interval]))", "delivered"),
                      (f"sum(rate(rabbitmq_global_messages_acknowledged_total{{{NS}}}[$__rate_interval]))", "acked")],
                     "ops"), 12, 8)
    b.add(timeseries("Publish and deliver per queue", "Messages per second routed into each queue and "
                     "delivered from it (per-channel counters, summed; they exist while clients are connected).",
                     [(f"sum by (queue) (rate(rabbitmq_queue_messages_published_total{{{q}}}[$__rate_interval]))",
                       "{{queue}} published"),
                      (f"sum by (queue) (rate(rabbitmq_channel_messages_delivered_ack_total{{{q}}}[$__rate_interval]))",
                       "{{queue}} delivered"),
                      (f"sum by (queue) (rate(rabbitmq_channel_messages_acked_total{{{q}}}[$__rate_interval]))",
                       "{{queue}} acked")], "ops"), 12, 8)
    b.add(timeseries("Unroutable messages", "Published messages no queue was bound for: returned to a "
                     "mandatory publisher, or dropped. vid2mp3 publishes with mandatory, so any is a bug.",
                     [(f"sum(rate(rabbitmq_global_messages_unroutable_returned_total{{{NS}}}[$__rate_interval]))", "returned"),
                      (f"sum(rate(rabbitmq_global_messages_unroutable_dropped_total{{{NS}}}[$__rate_interval]))", "dropped")],
                     "ops", thresholds=[(0.001, "red")]), 8, 7)
    b.add(timeseries("Redelivered messages", "Messages delivered again after a consumer died or nacked "
                     "them (converter restarts, broker failover).",
                     [(f"sum(rate(rabbitmq_global_messages_redelivered_total{{{NS}}}[$__rate_interval]))", "redelivered")],
                     "ops"), 8, 7)
    b.add(timeseries("Dead-lettered by reason", "Messages moved to a dead-letter exchange: expired is the "
                     "normal way back from the retry delay queues; rejected means a consumer gave up on them.",
                     [(f"sum(rate(rabbitmq_global_messages_dead_lettered_expired_total{{{NS}}}[$__rate_interval]))", "expired (retry delay over)"),
                      (f"sum(rate(rabbitmq_global_messages_dead_lettered_rejected_total{{{NS}}}[$__rate_interval]))", "rejected"),
                      (f"sum(rate(rabbitmq_global_messages_dead_lettered_delivery_limit_total{{{NS}}}[$__rate_interval]))", "delivery limit"),
                      (f"sum(rate(rabbitmq_global_messages_dead_lettered_maxlen_total{{{NS}}}[$__rate_interval]))", "max length")],
                     "ops"), 8, 7)

    b.row("Resources")
    b.add(timeseries("Memory", "Broker resident memory and the high watermark above which it blocks publishers.",
                     [(f"sum(rabbitmq_process_resident_memory_bytes{{{NS}}})", "used"),
                      (f"sum(rabbitmq_resident_memory_limit_bytes{{{NS}}})", "limit")], "bytes"), 8, 7)
    b.add(timeseries("Free disk", "Free disk space and the limit below which the broker blocks publishers.",
                     [(f"sum(rabbitmq_disk_space_available_bytes{{{NS}}})", "free"),
                      (f"sum(rabbitmq_disk_space_available_limit_bytes{{{NS}}})", "limit")], "bytes"), 8, 7)
    b.add(timeseries("Connections and channels", "Open connections and channels over time; a steady climb is a "
                     "client leaking connections.",
                     [(f"sum(rabbitmq_connections{{{NS}}})", "connections"),
                      (f"sum(rabbitmq_channels{{{NS}}})", "channels")], "short"), 8, 7)

    return dashboard(
        "vid2mp3-rabbitmq", "vid2mp3 / RabbitMQ",
        "Is the broker healthy and moving messages? From RabbitMQ's own rabbitmq_prometheus plugin "
        "(scraped on /metrics/per-object): depth, unacked and consumers per queue, publish / deliver / "
        "ack rates broker-wide and per queue, unroutable, redelivered and dead-lettered messages, memory, "
        "disk and connections.",
        b, [var_datasource(), namespace_var("rabbitmq_identity_info"),
            var_query("queue", "Queue", f"label_values(rabbitmq_queue_messages{{{NS}}}, queue)", multi=True)])


DASHBOARDS = {
    "service-overview.json": service_overview,
    "pipeline.json": pipeline,
    "slo.json": slo,
    "rabbitmq.json": rabbitmq,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, sort_keys=False) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 if a file differs")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run monitoring/grafana/generate_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
