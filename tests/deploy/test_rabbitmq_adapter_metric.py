"""The prometheus-adapter rule reads a series that RabbitMQ's own plugin really exposes (live broker
on 127.0.0.1: AMQP 5672, rabbitmq_prometheus 15692)."""
from __future__ import annotations

import re
import time
import urllib.request
import uuid

import pika
import yaml

from .conftest import ROOT

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
PER_OBJECT = "http://127.0.0.1:15692/metrics/per-object"


def test_adapter_series_query_matches_rabbitmq_output():
    cfg = yaml.safe_load((ROOT / "k8s/monitoring/prometheus-adapter/config.yaml").read_text())
    (rule,) = cfg["externalRules"]
    m = re.fullmatch(r"(\w+)\{(.*)\}", rule["seriesQuery"])
    metric = m.group(1)
    labels = set(re.findall(r'(\w+)!=""', m.group(2)))
    queue = f"deploytest.video.{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        ch.basic_publish("", queue, b"deploytest", pika.BasicProperties(delivery_mode=2))
        deadline, line = time.monotonic() + 30, None
        while time.monotonic() < deadline and line is None:
            body = urllib.request.urlopen(PER_OBJECT, timeout=10).read().decode()
            line = next((row for row in body.splitlines()
                         if row.startswith(metric + "{") and f'queue="{queue}"' in row), None)
            if line is None:
                time.sleep(1)
        assert line, f"{metric} for {queue} never appeared at {PER_OBJECT}"
        found = set(re.findall(r'(\w+)="', line))
        assert labels <= found, f"{line} lacks {labels - found}"
        assert float(line.rsplit(" ", 1)[1]) >= 1
        assert re.fullmatch(rule["name"]["matches"], metric)
    finally:
        try:
            conn.channel().queue_delete(queue)
        finally:
            conn.close()
