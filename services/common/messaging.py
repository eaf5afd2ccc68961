"""RabbitMQ: queue topology, confirmed publishing, and a consumer that works off the I/O thread.

Rules (ARCHITECTURE.md): queues are declared by the code that uses them; every publish is
persistent, `mandatory` and confirmed; a consumer acks only after its effect is durable;
transient failures go through delay queues with growing back-off, and exhausted or
permanent failures go to `<queue>.dead`. W3C trace context travels in message headers.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import queue as queue_mod
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pika
import pika.exceptions
from opentelemetry import context, propagate
from opentelemetry.trace import SpanKind

from . import config, metrics, telemetry

log = logging.getLogger(__name__)

# What a broken or restarting broker raises; all of it means "reconnect and try again".
CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    ConnectionError,
    OSError,
)



class PublishError(Exception):
    """The broker did not confirm the message: it is not sent."""


class TransientError(Exception):
    """Worth retrying later (a dependency is down, a timeout)."""


class PermanentError(Exception):
    """Retrying cannot help (bad input); the message is not retried."""


def dead_queue(name: str) -> str:
    return f"{name}.dead"


def retry_queue(name: str, delay_seconds: float) -> str:
    return f"{name}.retry.{int(delay_seconds * 1000)}ms"


def connection_parameters(url: str | None = None) -> pika.URLParameters:
    params = pika.URLParameters(url or config.env("RABBITMQ_URL"))
    params.heartbeat = config.env_int("AMQP_HEARTBEAT_SECONDS")
    params.blocked_connection_timeout = 60
    params.socket_timeout = 10
    params.connection_attempts = 1
    params.client_properties = {"connection_name": f"{telemetry.service_name() or 'vid2mp3'}"}
    return params


def declare_topology(channel, name: str) -> None:
    """Declare the work queue `name`, its dead-letter queue and its retry delay queues (idempotent)."""
    queue_type = config.env("AMQP_QUEUE_TYPE")
    durable_args: dict[str, Any] = {"x-queue-type": queue_type}
    channel.queue_declare(dead_queue(name), durable=True, arguments=dict(durable_args))
    work_args = dict(durable_args, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_queue(name)})
    if queue_type == "quorum":
        # A message that crashes its consumer again and again is dead-lettered instead of looping.
        work_args["x-delivery-limit"] = 20
    channel.queue_declare(name, durable=True, arguments=work_args)
    for delay in config.retry_delays():
        channel.queue_declare(
            retry_queue(name, delay),
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-message-ttl": int(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": name,
            },
        )


def _messaging_attributes(queue: str, operation: str, message_id: str | None, size: int) -> dict[str, Any]:
    attrs = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": queue,
        "messaging.message.body.size": size,
    }
    if message_id:
        attrs["messaging.message.id"] = message_id
    return attrs


def keepalive_interval() -> float:
    """How often an idle connection's heartbeats are serviced: well inside the negotiated timeout.

    pika sends a heartbeat every timeout/2 but only when its timers run; the broker drops a
    connection after about one timeout of silence. Servicing every timeout/4 keeps the longest
    gap near 3/4 of the timeout.
    """
    heartbeat = config.env_int("AMQP_HEARTBEAT_SECONDS")
    return 5.0 if heartbeat <= 0 else min(max(heartbeat / 4, 0.5), 15.0)


def count_reconnect(reason: str, error: BaseException | None = None, **fields: Any) -> None:
    """Count (and log) an AMQP connection found dead that will be reopened; `reason` says where it was noticed."""
    metrics.AMQP_RECONNECTS.labels(reason).inc()
    log.warning("AMQP connection lost, will reconnect", extra={
        "reason": reason, "error": f"{type(error).__name__}: {error}" if error else None, **fields})


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
        self._connection = None
        self._channel = None
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
        with telemetry.tracer(__name__).start_as_current_span(
            span_name, context=parent, kind=SpanKind.PRODUCER,
            attributes=_messaging_attributes(queue, "publish", message_id, len(payload)),
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


@dataclass
class Delivery:
    """One message handed to a handler."""

    queue: str
    body: bytes
    properties: pika.BasicProperties
    delivery_tag: int
    redelivered: bool
    headers: dict = field(default_factory=dict)

    def json(self) -> dict:
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PermanentError(f"message is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise PermanentError("message is not a JSON object")
        return value

    @property
    def retries(self) -> int:
        try:
            return int(self.headers.get("x-retries", 0))
        except (TypeError, ValueError):
            return 0

    @property
    def published_at(self) -> float | None:
        value = self.headers.get("x-published-at-ms")
        return value / 1000 if isinstance(value, int) else None


class Consumer:
    """Consume one queue with prefetch 1, doing the work on a worker thread.

    The I/O thread only moves frames (so heartbeats flow during a long conversion); the
    worker thread runs `handler(delivery)` and the ack is handed back to the I/O thread with
    `add_callback_threadsafe`. The handler returns normally when the message's effect is
    durable; raises TransientError to retry with back-off; raises PermanentError to
    dead-letter. `on_give_up(delivery, reason)` runs when a message is dead-lettered.
    Reconnects by itself after a broker restart.
    """

    def __init__(self, queue: str, handler: Callable[[Delivery], None], *,
                 on_give_up: Callable[[Delivery, str], None] | None = None,
                 on_retry: Callable[[Delivery, str], None] | None = None, url: str | None = None,
                 publisher: Publisher | None = None):
        self.queue = queue
        self.handler = handler
        self.on_give_up = on_give_up
        self.on_retry = on_retry
        self.url = url
        # Used by the worker thread; the I/O loop services its heartbeats between publishes.
        self.publisher = publisher or Publisher(url)
        self._was_connected = False
        self._work: queue_mod.Queue = queue_mod.Queue()
        self._stopping = threading.Event()
        self._busy = threading.Event()
        self.connected = threading.Event()
        self.last_tick = time.monotonic()
        self._worker = threading.Thread(target=self._work_loop, name=f"work-{queue}", daemon=True)

    # ---- worker thread
    def _work_loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            connection, channel, delivery = item
            self._busy.set()
            try:
                self._handle(delivery)
                self._settle(connection, channel, delivery.delivery_tag, ack=True)
            except Exception as exc:
                # Could not be moved to its retry or dead-letter queue (or a bug outside the handler):
                # hand it back to the broker; a quorum queue's delivery limit stops endless loops.
                if not isinstance(exc, _NotSettled):
                    log.exception("message handling failed outside the handler", extra={"queue": self.queue})
                time.sleep(1)
                self._settle(connection, channel, delivery.delivery_tag, ack=False)
            finally:
                self._busy.clear()

    def _handle(self, delivery: Delivery) -> None:
        parent = propagate.extract(delivery.headers)
        size = len(delivery.body)
        attrs = _messaging_attributes(self.queue, "process", delivery.properties.message_id, size)
        attrs["messaging.rabbitmq.message.delivery_tag"] = delivery.delivery_tag
        attrs["vid2mp3.redelivered"] = delivery.redelivered
        attrs["vid2mp3.retries"] = delivery.retries
        token = context.attach(parent)
        try:
            with telemetry.tracer(__name__).start_as_current_span(
                f"process {self.queue}", kind=SpanKind.CONSUMER, attributes=attrs
            ) as span:
                try:
                    self.handler(delivery)
                except PermanentError as exc:
                    span.set_attribute("vid2mp3.outcome", "dead_lettered")
                    telemetry.record_error(span, exc)
                    self._give_up(delivery, str(exc))
                except Exception as exc:  # anything unexpected is retried, never crashes the worker
                    span.set_attribute("vid2mp3.outcome", "retried")
                    telemetry.record_error(span, exc)
                    reason = str(exc) if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
                    log.warning("message processing failed, will retry", exc_info=not isinstance(exc, TransientError),
                                extra={"queue": self.queue, "reason": reason, "retries": delivery.retries})
                    self._retry(delivery, reason)
        finally:
            context.detach(token)

    def _republish(self, target: str, delivery: Delivery, headers: dict) -> None:
        """Copy a message to `target` with a confirm; if that fails it stays unacked for redelivery."""
        headers = {k: v for k, v in headers.items() if k not in ("traceparent", "tracestate", "baggage")}
        try:
            self.publisher.publish(target, _json_or_raw(delivery.body), headers=headers,
                                   message_id=delivery.properties.message_id, declare=False)
        except PublishError:
            log.error("could not move message, leaving it for redelivery", extra={"queue": self.queue, "target": target})
            raise _NotSettled() from None

    def _retry(self, delivery: Delivery, reason: str) -> None:
        delays = config.retry_delays()
        if delivery.retries >= len(delays):
            self._give_up(delivery, f"gave up after {delivery.retries} retries: {reason}")
            return
        if self.on_retry:
            self.on_retry(delivery, reason)
        headers = dict(delivery.headers, **{"x-retries": delivery.retries + 1, "x-last-error": reason[:500]})
        self._republish(retry_queue(self.queue, delays[delivery.retries]), delivery, headers)

    def _give_up(self, delivery: Delivery, reason: str) -> None:
        log.error("message dead-lettered", extra={"queue": self.queue, "reason": reason})
        if self.on_give_up:
            try:
                self.on_give_up(delivery, reason)
            except Exception:
                log.exception("give-up hook failed", extra={"queue": self.queue})
        headers = dict(delivery.headers, **{"x-death-reason": reason[:500], "x-dead-at-ms": int(time.time() * 1000)})
        self._republish(dead_queue(self.queue), delivery, headers)

    def _settle(self, connection, channel, tag: int, ack: bool) -> None:
        def settle():
            if channel.is_open:
                channel.basic_ack(tag) if ack else channel.basic_nack(tag, requeue=True)

        try:
            connection.add_callback_threadsafe(settle)
        except CONNECTION_ERRORS:
            pass  # the connection is gone; the broker redelivers and the handler is idempotent

    # ---- I/O thread
    def run(self) -> None:
        """Consume until `stop()`; reconnect with back-off whenever the broker goes away."""
        self._worker.start()
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                self._consume_once()
                backoff = 1.0
            except CONNECTION_ERRORS as exc:
                self.connected.clear()
                if self._was_connected:
                    self._was_connected = False
                    metrics.AMQP_RECONNECTS.labels("consumer_lost").inc()
                log.warning("broker connection lost, reconnecting", extra={"queue": self.queue, "error": str(exc),
                                                                             "retry_in": backoff})
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self._work.put(None)
        self._worker.join(timeout=5)
        self.publisher.close()

    def _consume_once(self) -> None:
        connection = pika.BlockingConnection(connection_parameters(self.url))
        try:
            channel = connection.channel()
            declare_topology(channel, self.queue)
            channel.basic_qos(prefetch_count=1)

            def on_message(ch, method, properties, body):
                delivery = Delivery(self.queue, body, properties, method.delivery_tag, method.redelivered,
                                    dict(properties.headers or {}))
                self._work.put((connection, ch, delivery))

            tag = channel.basic_consume(self.queue, on_message)
            self.connected.set()
            self._was_connected = True
            log.info("consuming", extra={"queue": self.queue})
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=1)
                self.last_tick = time.monotonic()
                # The worker's publisher connection idles between jobs: keep its heartbeats flowing
                # (skipped while the worker publishes; the two share the publisher's lock).
                self.publisher.keep_alive()
            # Graceful stop: no new deliveries, let the job in hand finish and its ack go out.
            channel.basic_cancel(tag)
            while self._busy.is_set() or not self._work.empty():
                connection.process_data_events(time_limit=0.5)
            connection.process_data_events(time_limit=0.2)
        finally:
            self.connected.clear()
            try:
                connection.close()
            except Exception:  # already closed by the broker
                pass

    def stop(self) -> None:
        self._stopping.set()

    def healthy(self) -> bool:
        """Alive: the I/O loop ticks (or is waiting to reconnect) and the worker thread runs."""
        return self._worker.is_alive() and (time.monotonic() - self.last_tick < 120 or not self.connected.is_set())


class _NotSettled(Exception):
    """The message could not be moved anywhere; leave it unacked."""


def _json_or_raw(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"raw": body.decode("utf-8", "replace")[:10000]}


