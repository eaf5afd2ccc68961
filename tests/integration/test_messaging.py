"""Publisher and Consumer against the real RabbitMQ: confirms, retries, dead letters, heartbeats,
reconnect back-off, consumers cancelled by the broker."""
from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import uuid

import pika
import pika.exceptions
import pytest

from services.common import config, messaging
from devkit.net import free_port


@pytest.fixture
def queue_name():
    name = f"t{uuid.uuid4().hex[:8]}.work"
    yield name
    connection = pika.BlockingConnection(messaging.connection_parameters())
    channel = connection.channel()
    for q in [name, messaging.dead_queue(name)] + [messaging.retry_queue(name, d) for d in config.retry_delays()]:
        channel.queue_delete(q)
    connection.close()


def run_consumer(consumer: messaging.Consumer) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert consumer.connected.wait(10)
    return thread


def get_all(queue: str) -> list[tuple[pika.BasicProperties, dict]]:
    connection = pika.BlockingConnection(messaging.connection_parameters())
    channel = connection.channel()
    found = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        found.append((properties, json.loads(body)))
    connection.close()
    return found


def wait_until(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_publish_is_persistent_confirmed_and_carries_trace_context(queue_name):
    publisher = messaging.Publisher()
    publisher.publish(queue_name, {"job_id": "j1"}, message_id="m1")
    [(properties, body)] = get_all(queue_name)
    assert body == {"job_id": "j1"}
    assert properties.delivery_mode == 2 and properties.message_id == "m1"
    assert "x-published-at-ms" in properties.headers
    publisher.close()


def test_publish_to_a_missing_queue_is_not_confirmed(queue_name):
    publisher = messaging.Publisher()
    with pytest.raises(messaging.PublishError):
        publisher.publish(f"{queue_name}.nobody-declared-this", {"x": 1}, declare=False)
    # The publisher recovers for the next message.
    publisher.publish(queue_name, {"after": "error"})
    assert [b for _, b in get_all(queue_name)] == [{"after": "error"}]
    publisher.close()


def test_transient_failures_retry_with_backoff_then_succeed(queue_name):
    attempts = []

    def handler(delivery):
        attempts.append((time.monotonic(), delivery.retries))
        if len(attempts) < 3:
            raise messaging.TransientError("dependency down")

    consumer = messaging.Consumer(queue_name, handler)
    thread = run_consumer(consumer)
    messaging.Publisher().publish(queue_name, {"n": 1})
    assert wait_until(lambda: len(attempts) == 3)
    consumer.stop()
    thread.join(10)
    assert [r for _, r in attempts] == [0, 1, 2]
    delays = config.retry_delays()
    assert attempts[1][0] - attempts[0][0] >= delays[0] * 0.9
    assert attempts[2][0] - attempts[1][0] >= delays[1] * 0.9
    assert get_all(messaging.dead_queue(queue_name)) == []


def test_exhausted_retries_and_poison_messages_are_dead_lettered(queue_name):
    given_up = []

    def handler(delivery):
        body = delivery.json()  # raises PermanentError for non-JSON
        if body.get("kind") == "always-fails":
            raise RuntimeError("boom")

    consumer = messaging.Consumer(queue_name, handler, on_give_up=lambda d, reason: given_up.append(reason))
    thread = run_consumer(consumer)
    publisher = messaging.Publisher()
    publisher.publish(queue_name, {"kind": "always-fails"})
    publisher._open().basic_publish("", queue_name, b"\x00not json{", pika.BasicProperties(delivery_mode=2))
    publisher.publish(queue_name, {"kind": "fine"})
    assert wait_until(lambda: len(given_up) == 2, timeout=20)
    consumer.stop()
    thread.join(10)
    dead = get_all(messaging.dead_queue(queue_name))
    reasons = sorted(p.headers["x-death-reason"] for p, _ in dead)
    assert len(dead) == 2
    assert reasons[0].startswith("gave up after 3 retries: RuntimeError: boom")
    assert reasons[1].startswith("message is not JSON")
    assert get_all(queue_name) == []


def test_long_work_does_not_starve_heartbeats(queue_name, monkeypatch):
    # With a 2 s heartbeat, 7 s of blocking work would get the connection closed
    # by the broker if the I/O thread were doing the work.
    monkeypatch.setenv("AMQP_HEARTBEAT_SECONDS", "2")
    done = []

    def handler(delivery):
        time.sleep(7)
        done.append(delivery.json())

    consumer = messaging.Consumer(queue_name, handler)
    thread = run_consumer(consumer)
    messaging.Publisher().publish(queue_name, {"slow": True})
    messaging.Publisher().publish(queue_name, {"slow": "second"})
    assert wait_until(lambda: len(done) == 2, timeout=25)
    consumer.stop()
    thread.join(10)
    assert done == [{"slow": True}, {"slow": "second"}]
    # Both acked on the first delivery: nothing left, nothing retried.
    assert get_all(queue_name) == [] and get_all(messaging.dead_queue(queue_name)) == []


def test_graceful_stop_finishes_the_message_in_hand(queue_name):
    started, finished = threading.Event(), []

    def handler(delivery):
        started.set()
        time.sleep(2)
        finished.append(delivery.json())

    consumer = messaging.Consumer(queue_name, handler)
    thread = run_consumer(consumer)
    messaging.Publisher().publish(queue_name, {"in": "hand"})
    assert started.wait(10)
    consumer.stop()
    thread.join(15)
    assert not thread.is_alive()
    assert finished == [{"in": "hand"}]
    assert get_all(queue_name) == []  # acked, not requeued


def _reconnects() -> dict[str, float]:
    from services.common import metrics

    return {reason: metrics.AMQP_RECONNECTS.labels(reason)._value.get()
            for reason in ("lost_while_idle", "lost_on_publish", "lost_on_check", "consumer_lost")}


def _amqp_errors(caplog) -> list[str]:
    return [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.WARNING
            and (r.name.startswith("pika") or r.name == messaging.__name__)]


def test_idle_pooled_publisher_keeps_its_connection(queue_name, monkeypatch, caplog):
    # With a 2 s heartbeat the broker drops a connection nobody services within a few seconds
    # (what the gateway's per-thread connections did): the pool's keeper services idle ones.
    monkeypatch.setenv("AMQP_HEARTBEAT_SECONDS", "2")
    caplog.set_level(logging.INFO)
    before = _reconnects()
    pool = messaging.PublisherPool()
    try:
        with pool.publisher() as publisher:
            publisher.publish(queue_name, {"n": 1})
            connection = publisher._connection
        time.sleep(10)
        pool.check(queue_name)  # readiness after the quiet spell
        with pool.publisher() as again:
            assert again is publisher and again._connection is connection and connection.is_open
            again.publish(queue_name, {"n": 2})
        assert [body for _, body in get_all(queue_name)] == [{"n": 1}, {"n": 2}]
        assert _reconnects() == before, "a connection died while idle"
        assert not _amqp_errors(caplog)
    finally:
        pool.close()


def test_pool_hands_each_thread_its_own_publisher_and_recovers_a_dead_one(queue_name):
    pool = messaging.PublisherPool()
    try:
        barrier, seen = threading.Barrier(3), []

        def publish(n):
            with pool.publisher() as publisher:
                barrier.wait(5)  # all three checked out at once
                seen.append(publisher)
                publisher.publish(queue_name, {"n": n})

        threads = [threading.Thread(target=publish, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert len({id(p) for p in seen}) == 3 and len(pool._idle) == 3
        # A connection that died anyway (broker restart, network): readiness reopens it once before judging.
        before = _reconnects()["lost_on_check"]
        for publisher, _ in pool._idle:
            publisher._connection._impl._transport._sock.shutdown(socket.SHUT_RDWR)
        pool.check(queue_name)
        assert _reconnects()["lost_on_check"] == before + 1
        with pool.publisher() as publisher:
            publisher.publish(queue_name, {"n": "after"})
        assert sorted(str(b["n"]) for _, b in get_all(queue_name)) == ["0", "1", "2", "after"]
    finally:
        pool.close()


def test_consumer_services_its_idle_publisher(queue_name, monkeypatch, caplog):
    # The converter publishes its result from the worker thread, then idles until the next job.
    monkeypatch.setenv("AMQP_HEARTBEAT_SECONDS", "3")
    caplog.set_level(logging.INFO)
    before = _reconnects()
    connections = []

    def handler(delivery):
        consumer.publisher.publish(messaging.dead_queue(queue_name), delivery.json(), declare=False)
        connections.append(consumer.publisher._connection)

    consumer = messaging.Consumer(queue_name, handler)
    thread = run_consumer(consumer)
    messaging.Publisher().publish(queue_name, {"job": 1})
    assert wait_until(lambda: len(connections) == 1)
    time.sleep(12)
    messaging.Publisher().publish(queue_name, {"job": 2})
    assert wait_until(lambda: len(connections) == 2)
    consumer.stop()
    thread.join(10)
    assert connections[0] is connections[1], "the worker's publisher connection was reopened"
    assert [b for _, b in get_all(messaging.dead_queue(queue_name))] == [{"job": 1}, {"job": 2}]
    assert _reconnects() == before
    assert not _amqp_errors(caplog)


def _consumers(queue: str) -> int | None:
    """How many consumers `queue` has, or None when it does not exist."""
    connection = pika.BlockingConnection(messaging.connection_parameters())
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if connection.is_open:
            connection.close()


def test_consumer_cancelled_by_the_broker_consumes_again(queue_name, caplog):
    # RabbitMQ sends basic.cancel when the queue is deleted (or a replicated queue loses its
    # leader): the consumer finishes the message in hand, declares the queue again and consumes.
    caplog.set_level(logging.INFO)
    before = _reconnects()
    started, release, received = threading.Event(), threading.Event(), []

    def handler(delivery):
        body = delivery.json()
        if body["n"] == "in hand":
            started.set()
            release.wait(15)
        received.append(body)

    consumer = messaging.Consumer(queue_name, handler)
    thread = run_consumer(consumer)
    publisher = messaging.Publisher()
    publisher.publish(queue_name, {"n": "in hand"})
    assert started.wait(10)
    admin = pika.BlockingConnection(messaging.connection_parameters())
    admin.channel().queue_delete(queue_name)
    admin.close()
    time.sleep(1)
    assert _consumers(queue_name) is None  # not declared again while the message in hand runs
    release.set()
    assert wait_until(lambda: _consumers(queue_name) == 1), "the consumer did not consume again"
    publisher.publish(queue_name, {"n": "after"}, declare=False)  # routable only if the consumer re-declared
    assert wait_until(lambda: len(received) == 2)
    assert consumer.connected.is_set() and consumer.healthy()
    consumer.stop()
    thread.join(10)
    publisher.close()
    assert not thread.is_alive()
    assert received == [{"n": "in hand"}, {"n": "after"}]
    assert any(r.getMessage() == "consumer cancelled by the broker, consuming again" for r in caplog.records)
    assert _reconnects() == before  # consumed again on the same connection
    assert get_all(queue_name) == [] and get_all(messaging.dead_queue(queue_name)) == []


def test_backoff_is_exponential_with_full_jitter_and_capped():
    backoff = messaging.Backoff(base=1.0, cap=30.0, rng=random.Random(7))
    waits = [backoff.next() for _ in range(12)]
    for n, wait in enumerate(waits):
        assert 0 <= wait <= min(30.0, 2 ** n), (n, wait)
    assert waits[:5] != [1.0, 2.0, 4.0, 8.0, 16.0] and len(set(waits)) == len(waits)
    # At the cap the waits spread over the whole interval rather than sitting at 30 s.
    capped = [backoff.next() for _ in range(500)]
    assert max(capped) <= 30.0 and min(capped) < 3.0 and max(capped) > 27.0
    assert 12.0 < sum(capped) / len(capped) < 18.0
    assert backoff.ceiling() == 30.0 and backoff.attempt == 512  # no overflow however long the outage
    backoff.reset()
    assert backoff.ceiling() == 1.0 and backoff.next() <= 1.0


def test_consumer_reconnects_with_jittered_backoff_reset_on_success(queue_name, caplog):
    caplog.set_level(logging.INFO)
    consumer = messaging.Consumer(queue_name, lambda delivery: None, url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    assert (consumer.backoff.base, consumer.backoff.cap) == (1.0, 30.0)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()

    def waits():
        return [r.retry_in for r in caplog.records if r.getMessage() == "broker connection lost, reconnecting"]

    assert wait_until(lambda: len(waits()) >= 3, timeout=15)
    assert not consumer.connected.is_set() and consumer.healthy()
    consumer.url = None  # the broker "comes back": the next attempt reaches the real one
    assert consumer.connected.wait(35)
    assert consumer.backoff.attempt == 0, "a successful connection resets the back-off"
    consumer.stop()
    thread.join(10)
    observed = waits()
    for n, wait in enumerate(observed):
        assert 0 <= wait <= min(30.0, 2 ** n), observed
    assert observed[:3] != [1.0, 2.0, 4.0], "the waits are not jittered"
