"""Live proof of monitoring/: a real Prometheus scrapes the running stack with the project's own
configuration and rules, and every dashboard query and recording rule must return data."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import PORTS
from devkit.client import Client
from devkit.media import make_media
from tests.monitoring.queries import INCIDENT_ONLY, all_queries
from devkit.net import free_port
from devkit.stack import ROOT

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
    check = subprocess.run(["promtool", "check", "config", str(work / "prometheus.yml")],
                           capture_output=True, text=True)
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


def janitor_round_with_a_leftover(stack) -> None:
    """A temp folder of a converter that died (kill -9 skips its clean-up), then one more janitor round,
    as the CronJob runs it: the round removes the folder, so vid2mp3_storage_removed_files_total has a
    `reason` child. The stack's own janitor ran a round at start (vid2mp3_storage_* exist from then on)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = stack["home"] / "work" / f"vid2mp3-{dead.pid}-leftover"
    leftover.mkdir(parents=True)
    (leftover / "partial.mp3").write_bytes(b"\0" * 1024)
    env = {**os.environ, "WORK_DIR": str(stack["home"] / "work")}  # the stack's converter work dir
    done = subprocess.run([sys.executable, "-m", "services.janitor", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not leftover.exists()


def cancel_one(user: Client, media: Path) -> None:
    """A job cancelled right after its upload (a few tries: a short one may finish first)."""
    for _ in range(5):
        # A fresh user per try: after a try that finished, the same file would be reused (done at once).
        user = Client(user.base).signed_up()
        job_id = user.upload(media).json()["job_id"]
        cancelled = requests.post(f"{user.base}/jobs/{job_id}/cancel", headers=user.auth, timeout=10)
        if cancelled.status_code == 200:
            return
        assert cancelled.status_code == 409, cancelled.text  # finished before the cancel arrived
    pytest.fail("no upload could be cancelled before it finished")


def delete(user: Client, job_id: str) -> None:
    # a finished job: deleting a queued one would leave its video message to a converter that no longer
    # finds the job, which dead-letters it (not what this traffic is meant to show)
    deleted = requests.delete(f"{user.base}/jobs/{job_id}", headers=user.auth, timeout=10)
    assert deleted.status_code == 204, deleted.text


def wait_for_series(url: str, expr: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not query(url, expr):
        assert time.monotonic() < deadline, f"no series for {expr} after {timeout} s"
        time.sleep(1)


@pytest.fixture(scope="module")
def traffic(stack, prometheus, tmp_path_factory):
    """Successful, failed and cancelled conversions, deleted jobs, a few client errors and a janitor
    round with something to remove, while Prometheus watches."""
    janitor_round_with_a_leftover(stack)
    user = Client(stack["gateway"]).signed_up()
    media = tmp_path_factory.mktemp("live")
    video = make_media(media / "live.mp4", seconds=2)
    long_audio = make_media(media / "long.mp4", seconds=120, video=None)
    junk = media / "junk.mp4"
    junk.write_text("not a video" * 50)
    for _ in range(2):
        time.sleep(2)  # spread the samples so rate() sees increases between scrapes
        assert user.wait_job(user.upload(video).json()["job_id"])["status"] == "done"
        failed = user.upload(junk).json()["job_id"]
        assert user.wait_job(failed)["status"] == "failed"
        delete(user, failed)
        cancel_one(user, long_audio)
        user.job("000000000000000000000000")
        requests.get(f"{stack['gateway']}/jobs", headers=user.auth, timeout=10)
    # the gateway reads the janitor's figures at most every 10 s
    wait_for_series(prometheus, "vid2mp3_storage_removed_files_total")
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
    # The optional converter HPA's External metric (components/converter-hpa-prometheus-adapter):
    # RabbitMQ's own per-queue series for the video queue.
    series = query(prometheus, 'rabbitmq_queue_messages{queue=~"(.+[.])?video"}')
    assert series and all({"queue", "vhost", "namespace"} <= set(s["metric"]) for s in series)


def test_exemplars_reach_prometheus(prometheus, traffic):
    now = time.time()
    body = requests.get(f"{prometheus}/api/v1/query_exemplars",
                        params={"query": "converter_job_e2e_latency_seconds_bucket", "start": now - 600, "end": now},
                        timeout=10).json()
    assert body["status"] == "success"
    assert any(len(e["labels"].get("trace_id", "")) == 32 for series in body["data"] for e in series["exemplars"])
