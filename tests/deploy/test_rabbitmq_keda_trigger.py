"""The converter's KEDA trigger (rabbitmq scaler, protocol http, mode QueueLength) reads the queue's
`messages` from the management API: a live broker on 127.0.0.1 (AMQP 5672, management 15672) shows
that this counts unacknowledged deliveries too, i.e. jobs being converted, which the amqp protocol
(ready messages only) misses. The capacity model (loadtest/) relies on it."""
from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
import uuid

import pika
import pytest
import yaml

from services import devstack

from .conftest import ROOT

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
MANAGEMENT = "http://127.0.0.1:15672"


def queue_stats(vhost: str, queue: str) -> dict:
    # the path KEDA's scaler requests: <host>/api/queues/<vhost>/<queue>
    url = f"{MANAGEMENT}/api/queues/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(queue, safe='')}"
    auth = "Basic " + base64.b64encode(b"guest:guest").decode()
    request = urllib.request.Request(url, headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def management():
    devstack.ensure_rabbitmq()  # enables the management plugin if needed
    devstack.wait_for(lambda: devstack.port_open("127.0.0.1", 15672), "RabbitMQ's management API", 60)


def test_management_messages_count_ready_plus_unacked(management):
    trigger = yaml.safe_load((ROOT / "kustomize/components/converter-keda/scaledobject.yaml").read_text())
    (meta,) = [t["metadata"] for t in trigger["spec"]["triggers"]]
    assert (meta["protocol"], meta["mode"]) == ("http", "QueueLength")
    queue = f"deploytest.video.{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for n in range(3):
            ch.basic_publish("", queue, f"job {n}".encode(), pika.BasicProperties(delivery_mode=2))
        ch.basic_qos(prefetch_count=1)  # as the converter: one job in hand, unacked while it converts
        method, _, _ = ch.basic_get(queue, auto_ack=False)
        assert method is not None
        # the API's statistics refresh every few seconds (collect_statistics_interval)
        deadline, stats = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            stats = queue_stats("/", queue)
            if stats.get("messages_unacknowledged") == 1 and stats.get("messages_ready") == 2:
                break
            conn.sleep(1)
        assert (stats.get("messages_ready"), stats.get("messages_unacknowledged")) == (2, 1), stats
        assert stats["messages"] == 3, "the trigger's `messages` is ready + unacked"
        ch.basic_ack(method.delivery_tag)
    finally:
        try:
            conn.channel().queue_delete(queue)
        finally:
            conn.close()
