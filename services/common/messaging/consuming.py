"""The consumer's transport: connection, channel, consume loop, reconnects, acks on the I/O thread.

What becomes of each message (retry, dead-letter, the `process` span) is the RetryPolicy's
(retry.py); this module only moves deliveries to the worker thread and settles them.
"""
from __future__ import annotations

import queue as queue_mod
import random
import threading
import time
from typing import Callable

import pika

from .. import metrics
from .base import CONNECTION_ERRORS, Delivery, connection_parameters, declare_topology, log
from .publishing import Publisher
from .retry import Hook, NotSettled, RetryPolicy


class Backoff:
    """Exponential back-off with full jitter: the n-th wait (from 0) is uniform(0, min(cap, base * 2**n)).

    Jitter spreads the reconnects of many workers after a broker restart instead of having
    them all knock at the same instant; `reset()` once a connection succeeded.
    """

    def __init__(self, base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._random = rng or random.Random()

    def ceiling(self) -> float:
        """The longest the next wait can be."""
        return min(self.cap, self.base * 2 ** min(self.attempt, 64))

    def next(self) -> float:
        delay = self._random.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class Consumer:
    """Consume one queue with prefetch `concurrency` (default 1), doing the work on as many worker threads.

    The I/O thread only moves frames (so heartbeats flow during a long conversion); a
    worker thread runs the delivery through `policy` (handler, retry, dead-letter; see
    RetryPolicy) and the ack is handed back to the I/O thread with `add_callback_threadsafe`.
    Reconnects by itself, with jittered back-off, after a broker restart; consumes again
    when the broker cancels the consumer (queue deleted, quorum leader moved). With a
    `handler_deadline`, a handler running longer than that makes `healthy()` False (liveness).
    """

    def __init__(self, queue: str, handler: Callable[[Delivery], None], *,
                 on_give_up: Hook | None = None, on_retry: Hook | None = None, url: str | None = None,
                 publisher: Publisher | None = None, concurrency: int = 1,
                 handler_deadline: float | None = None):
        self.queue = queue
        self.concurrency = max(1, concurrency)
        self.handler_deadline = handler_deadline
        self.handler = handler
        self.url = url
        # Used by the worker thread; the I/O loop services its heartbeats between publishes.
        self.publisher = publisher or Publisher(url)
        self.policy = RetryPolicy(queue, self.publisher, on_retry=on_retry, on_give_up=on_give_up)
        self.backoff = Backoff(base=1.0, cap=30.0)
        self._was_connected = False
        self._cancelled = False  # the broker cancelled our consumer (set and read on the I/O thread)
        self._work: queue_mod.Queue = queue_mod.Queue()
        self._stopping = threading.Event()
        self._in_hand: dict[int, float] = {}  # worker thread id -> when its handler started
        self.connected = threading.Event()
        self.last_tick = time.monotonic()
        self._workers = [threading.Thread(target=self._work_loop, name=f"work-{queue}-{n}", daemon=True)
                         for n in range(self.concurrency)]

    # ---- worker thread
    def _work_loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            connection, channel, delivery = item
            self._in_hand[threading.get_ident()] = time.monotonic()
            try:
                self.policy.process(delivery, self.handler)
                self._settle(connection, channel, delivery.delivery_tag, ack=True)
            except Exception as exc:
                # Could not be moved to its retry or dead-letter queue (or a bug outside the handler):
                # hand it back to the broker; a quorum queue's delivery limit stops endless loops.
                if not isinstance(exc, NotSettled):
                    log.exception("message handling failed outside the handler", extra={"queue": self.queue})
                time.sleep(1)
                self._settle(connection, channel, delivery.delivery_tag, ack=False)
            finally:
                self._in_hand.pop(threading.get_ident(), None)

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
        for worker in self._workers:
            worker.start()
        while not self._stopping.is_set():
            try:
                self._consume_once()
            except CONNECTION_ERRORS as exc:
                self.connected.clear()
                if self._was_connected:
                    self._was_connected = False
                    metrics.AMQP_RECONNECTS.labels("consumer_lost").inc()
                delay = self.backoff.next()
                log.warning("broker connection lost, reconnecting", extra={"queue": self.queue, "error": str(exc),
                                                                             "retry_in": round(delay, 3)})
                self._stopping.wait(delay)
        for _ in self._workers:
            self._work.put(None)
        for worker in self._workers:
            worker.join(timeout=5)
        self.publisher.close()

    def _consume_once(self) -> None:
        connection = pika.BlockingConnection(connection_parameters(self.url))
        try:
            channel = connection.channel()
            channel.add_on_cancel_callback(self._on_cancel)
            channel.basic_qos(prefetch_count=self.concurrency)
            tag = self._start_consuming(connection, channel)
            self.connected.set()
            self._was_connected = True
            self.backoff.reset()
            while not self._stopping.is_set():
                self._serve(connection)
                if self._cancelled:
                    # Deliveries already received are still ours to ack: finish them, then declare the
                    # queue again (it may have been deleted) and consume anew on the same channel.
                    log.warning("consumer cancelled by the broker, consuming again", extra={"queue": self.queue})
                    self._drain(connection)
                    tag = self._start_consuming(connection, channel)
            # Graceful stop: no new deliveries, let the job in hand finish and its ack go out.
            if not self._cancelled:
                channel.basic_cancel(tag)
            self._drain(connection)
            connection.process_data_events(time_limit=0.2)
        finally:
            self.connected.clear()
            try:
                connection.close()
            except Exception:  # already closed by the broker
                pass

    def _start_consuming(self, connection, channel) -> str:
        """Declare the topology and register the consumer (prefetch is already set on the channel)."""
        def on_message(ch, method, properties, body):
            delivery = Delivery(self.queue, body, properties, method.delivery_tag, method.redelivered,
                                dict(properties.headers or {}))
            self._work.put((connection, ch, delivery))

        declare_topology(channel, self.queue)
        self._cancelled = False
        tag = channel.basic_consume(self.queue, on_message)
        log.info("consuming", extra={"queue": self.queue})
        return tag

    def _on_cancel(self, _method_frame) -> None:
        """basic.cancel from the broker: no more deliveries will come to this consumer."""
        self._cancelled = True

    def _serve(self, connection) -> None:
        """Move frames until stopped or cancelled by the broker."""
        while not self._stopping.is_set() and not self._cancelled:
            connection.process_data_events(time_limit=1)
            self._tick()

    def _tick(self) -> None:
        self.last_tick = time.monotonic()
        # The worker's publisher connection idles between jobs: keep its heartbeats flowing
        # (skipped while the worker publishes; the two share the publisher's lock).
        self.publisher.keep_alive()

    def _drain(self, connection) -> None:
        """Wait until the worker has settled every delivery it was given, moving frames meanwhile."""
        while self._in_hand or not self._work.empty():
            connection.process_data_events(time_limit=0.5)
            self._tick()

    def stop(self) -> None:
        self._stopping.set()

    def oldest_handler_seconds(self) -> float:
        """How long the longest-running handler in hand has been running (0 when idle)."""
        started = list(self._in_hand.values())
        return time.monotonic() - min(started) if started else 0.0

    def stuck(self) -> bool:
        """A handler ran past the deadline: only a restart frees its thread (and its message)."""
        return self.handler_deadline is not None and self.oldest_handler_seconds() > self.handler_deadline

    def healthy(self) -> bool:
        """Alive: the I/O loop ticks (or is waiting to reconnect), every worker thread runs, none is stuck."""
        ticking = time.monotonic() - self.last_tick < 120 or not self.connected.is_set()
        if self.stuck():
            log.error("handler stuck past its deadline: unhealthy", extra={
                "queue": self.queue, "running_seconds": round(self.oldest_handler_seconds(), 1),
                "deadline_seconds": self.handler_deadline})
            return False
        return ticking and all(worker.is_alive() for worker in self._workers)
