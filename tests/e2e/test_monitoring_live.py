"""Live proof of monitoring/: a real Prometheus scrapes the running stack with the project's own
configuration and rules, and every dashboard query and recording rule must return data."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import PORTS
from tests.helpers import Client, make_media
from tests.monitoring.queries import INCIDENT_ONLY, all_queries
from tests.support.net import free_port
from tests.support.stack import ROOT

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is not installed (Debian package 'prometheus'); .ci/run installs it")
    work = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    # The project's local configuration, with this run's ports and a fast pace; nothing else changed.
    config = yaml.safe_load((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    ports = {"gateway": PORTS["GATEWAY_METRICS_PORT"], "auth": PORTS["AUTH_METRICS_PORT"],
             "converter": PORTS["CONVERTER_METRICS_PORT"], "notification": PORTS["NOTIFICATION_METRICS_PORT"],
             "rabbitmq": 15692, "prometheus": port}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{ports[job['job_name']]}"]
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    rules_dir = work / "rules"
    rules_dir.mkdir()
    for path in (ROOT / "monitoring/prometheus/rules").glob("*.yml"):
        rules = yaml.safe_load(path.read_text())
        for group in rules["groups"]:
            group.pop("interval", None)  # evaluate every group now, not every 5 minutes
        (rules_dir / path.name).write_text(yaml.safe_dump(rules))
    config["rule_files"] = [str(rules_dir / "*.yml")]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run(["promtool", "check", "config", str(work / "prometheus.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--enable-feature=exemplar-storage"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("prometheus did not become ready:\n" + (work / "prometheus.log").read_text()[-3000:])
    yield url
    proc.terminate()
    proc.wait(10)


def query(url: str, expr: str) -> list:
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.fixture(scope="module")
def traffic(stack, prometheus, tmp_path_factory):
    """Successful and failed conversions, and a few client errors, while Prometheus watches."""
    user = Client(stack["gateway"]).signed_up()
    media = tmp_path_factory.mktemp("live")
    video = make_media(media / "live.mp4", seconds=2)
    junk = media / "junk.mp4"
    junk.write_text("not a video" * 50)
    for _ in range(2):
        time.sleep(2)  # spread the samples so rate() sees increases between scrapes
        assert user.wait_job(user.upload(video).json()["job_id"])["status"] == "done"
        assert user.wait_job(user.upload(junk).json()["job_id"])["status"] == "failed"
        user.job("000000000000000000000000")
        requests.get(f"{stack['gateway']}/jobs", headers=user.auth, timeout=10)
    time.sleep(8)  # scrapes (1 s) and rule evaluations (1 s) catch up, including chained rules
    return user


def test_every_target_is_up(prometheus, traffic):
    results = {r["metric"]["job"]: r["value"][1] for r in query(prometheus, "up")}
    assert results == {"gateway": "1", "auth": "1", "converter": "1", "notification": "1", "rabbitmq": "1",
                       "prometheus": "1"}


def test_every_dashboard_query_and_recording_rule_returns_data(prometheus, traffic, capsys):
    queries = all_queries(namespace="local")
    empty, allowed_empty = [], []
    for source, expr in queries:
        if query(prometheus, expr):
            continue
        (allowed_empty if expr in INCIDENT_ONLY else empty).append((source, expr))
    with capsys.disabled():
        print(f"\nlive monitoring proof: {len(queries)} queries evaluated, "
              f"{len(queries) - len(empty) - len(allowed_empty)} returned data, "
              f"{len(allowed_empty)} empty by design (incident-only), {len(empty)} empty unexpectedly")
    assert not empty, "queries without data:\n" + "\n".join(f"{s}: {e}" for s, e in empty)


def test_autoscaler_metric_exists_with_the_adapter_labels(prometheus, traffic):
    # The converter HPA's External metric: RabbitMQ's own per-queue series for the video queue.
    series = query(prometheus, 'rabbitmq_queue_messages{queue=~"(.+[.])?video"}')
    assert series and all({"queue", "vhost", "namespace"} <= set(s["metric"]) for s in series)


def test_exemplars_reach_prometheus(prometheus, traffic):
    now = time.time()
    body = requests.get(f"{prometheus}/api/v1/query_exemplars",
                        params={"query": "converter_job_e2e_latency_seconds_bucket", "start": now - 600, "end": now},
                        timeout=10).json()
    assert body["status"] == "success"
    assert any(len(e["labels"].get("trace_id", "")) == 32 for series in body["data"] for e in series["exemplars"])
