"""Confirmed publishing: one Publisher per connection, and a pool of them for threaded processes."""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid

import pika
import pika.exceptions
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from .. import telemetry
from .base import (CONNECTION_ERRORS, PublishError, connection_parameters, count_reconnect, declare_topology,
                   keepalive_interval, log, messaging_attributes, tracer)


class Publisher:
    """Confirmed, persistent, mandatory publishing on a lazily opened connection.

    pika connections are not thread-safe: every use takes the publisher's lock, so one
    Publisher can be used by one thread while another services its heartbeats (`keep_alive`).
    A connection that is not serviced while idle misses its heartbeats and the broker drops
    it; whoever owns an idle Publisher calls `keep_alive()` every `keepalive_interval()`
    (PublisherPool and Consumer do). A connection found dead anyway (broker restart) is
    reopened once per publish before giving up, and counted in vid2mp3_amqp_reconnects_total.
    """

    def __init__(self, url: str | None = None):
        self.url = url
        self._connection: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._declared: set[str] = set()
        self._lock = threading.RLock()

    def _open(self):
        with self._lock:
            if self._channel is None or not self._channel.is_open:
                self.close()
                self._connection = pika.BlockingConnection(connection_parameters(self.url))
                self._channel = self._connection.channel()
                self._channel.confirm_delivery()
                self._declared = set()
            return self._channel

    @property
    def is_open(self) -> bool:
        return self._channel is not None and self._channel.is_open

    def ensure_queue(self, name: str) -> None:
        with self._lock:
            channel = self._open()
            if name not in self._declared:
                declare_topology(channel, name)
                self._declared.add(name)

    def check(self) -> None:
        """Raise if the broker cannot be reached (lets pika notice a connection the broker dropped)."""
        with self._lock:
            self._open()
            assert self._connection is not None  # _open leaves a connection or raises
            self._connection.process_data_events(time_limit=0)

    def keep_alive(self) -> bool:
        """Service an idle open connection's heartbeats (send ours, read the broker's).

        Never waits: when another thread holds the publisher it is busy, which services the
        connection anyway. A connection found dead is closed, counted and reopened on next use.
        Returns False only when a dead connection was found.
        """
        if not self._lock.acquire(blocking=False):
            return True
        try:
            if self._connection is None or not self._connection.is_open:
                return True
            try:
                self._connection.process_data_events(time_limit=0)
                return True
            except Exception as exc:  # CONNECTION_ERRORS, or anything else: never let it reach the caller's loop
                self.close()
                count_reconnect("lost_while_idle", exc)
                return False
        finally:
            self._lock.release()

    def publish(self, queue: str, body: dict, *, headers: dict | None = None, carrier: dict | None = None,
                message_id: str | None = None, declare: bool = True) -> None:
        """Publish and wait for the broker's confirm; raises PublishError when not confirmed.

        `carrier` is a stored W3C trace context (outbox re-publish): the message then joins
        that trace instead of the current one.
        """
        payload = json.dumps(body).encode()
        message_id = message_id or uuid.uuid4().hex
        parent = propagate.extract(carrier) if carrier else None
        span_name = f"publish {queue}"
        with tracer().start_as_current_span(
            span_name, context=parent, kind=SpanKind.PRODUCER,
            attributes=messaging_attributes(queue, "publish", message_id, len(payload)),
        ) as span, self._lock:
            msg_headers = dict(headers or {})
            msg_headers.setdefault("x-published-at-ms", int(time.time() * 1000))  # AMQP tables carry no floats
            propagate.inject(msg_headers)
            properties = pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=message_id,
                timestamp=int(time.time()),
                headers=msg_headers,
            )
            last_error: Exception | None = None
            for attempt in range(2):
                was_open = self.is_open
                try:
                    if declare:
                        self.ensure_queue(queue)
                    channel = self._open()
                    channel.basic_publish("", queue, payload, properties, mandatory=True)
                    return
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                    last_error = exc
                    break
                except CONNECTION_ERRORS as exc:
                    last_error = exc
                    self.close()
                    if attempt == 0 and was_open:
                        count_reconnect("lost_on_publish", exc, queue=queue)
            assert last_error is not None  # every way out of the loop but return sets it
            telemetry.record_error(span, last_error, "publish not confirmed")
            raise PublishError(f"message to {queue!r} not confirmed: {type(last_error).__name__}: {last_error}")

    def close(self) -> None:
        with self._lock:
            try:
                if self._connection is not None and self._connection.is_open:
                    self._connection.close()
            except Exception:  # closing a broken connection can fail in many ways; it is gone either way
                pass
            self._connection = self._channel = None


class PublisherPool:
    """Publishers shared by the threads of one process (the gateway's request threads, its outbox).

    A thread checks a Publisher out for one publish (`with pool.publisher() as p:`) and hands it
    back; the pool grows to the number of concurrent publishers and no further. A background
    thread services the heartbeats of the idle ones, so a quiet spell never leaves a dead
    connection behind for the next publish or readiness probe, and closes the extra ones
    that stayed idle for `max_idle` seconds (one is always kept warm).
    """

    def __init__(self, url: str | None = None, *, max_idle: float = 300.0):
        self.url = url
        self.max_idle = max_idle
        self._idle: list[tuple[Publisher, float]] = []  # (publisher, when it was handed back)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._keeper: threading.Thread | None = None

    @contextlib.contextmanager
    def publisher(self):
        publisher = self._take()
        try:
            yield publisher
        finally:
            self._give_back(publisher)

    def _give_back(self, publisher: Publisher) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._idle.append((publisher, time.monotonic()))
                return
        publisher.close()

    def _take(self) -> Publisher:
        with self._lock:
            if self._pid != os.getpid():
                # First use in this process (or a fork inherited the pool): start afresh.
                self._pid, self._idle = os.getpid(), []
                self._keeper = threading.Thread(target=self._keep_alive_loop, name="amqp-keepalive", daemon=True)
                self._keeper.start()
            if self._idle:
                return self._idle.pop()[0]  # the most recently used: the warmest
        return Publisher(self.url)

    def check(self, queue: str) -> None:
        """Readiness: the broker is reachable and `queue` declared; a connection found dead is reopened once first."""
        with self.publisher() as publisher:
            was_open = publisher.is_open
            try:
                publisher.ensure_queue(queue)
                publisher.check()
            except CONNECTION_ERRORS as exc:
                publisher.close()
                if not was_open:
                    raise  # a fresh connection failed: the broker is not there
                count_reconnect("lost_on_check", exc)
                publisher.ensure_queue(queue)
                publisher.check()

    def keep_alive_once(self) -> None:
        """Service every idle publisher's heartbeats; close the extra ones idle too long."""
        now = time.monotonic()
        retired = []
        with self._lock:  # a publisher being serviced cannot be checked out meanwhile
            for index, (publisher, since) in reversed(list(enumerate(self._idle))):
                if index > 0 and now - since > self.max_idle:  # the oldest one stays, warm
                    retired.append(self._idle.pop(index)[0])
                elif not publisher.keep_alive():
                    del self._idle[index]  # already closed; a new one opens on demand
        for publisher in retired:  # a clean close waits for the broker: not under the lock
            publisher.close()

    def _keep_alive_loop(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(keepalive_interval())
            try:
                self.keep_alive_once()
            except Exception:  # never let the keeper die: the next round tries again
                log.exception("AMQP keep-alive round failed")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for publisher, _ in idle:
            publisher.close()
