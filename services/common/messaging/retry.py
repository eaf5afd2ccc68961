"""What becomes of a delivered message: handled, retried through a delay queue, or dead-lettered.

The policy knows nothing of connections or channels: the consumer (consuming.py) hands it each
delivery and acks the message when `process` returns, or leaves it for redelivery when it raises.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from opentelemetry import context, propagate
from opentelemetry.trace import SpanKind

from .. import config, telemetry
from .base import (Deferred, Delivery, PermanentError, PublishError, TransientError, dead_queue, log,
                   messaging_attributes, retry_queue, tracer)
from .publishing import Publisher

Hook = Callable[[Delivery, str], None]


class NotSettled(Exception):
    """The message could not be moved anywhere; leave it unacked."""


class RetryPolicy:
    """Run a handler on a delivery in its `process <queue>` span and settle the outcome.

    The handler returns normally when the message's effect is durable; raises TransientError
    (or anything unexpected) to retry through the next delay queue, `x-retries` counting the
    attempts, until `config.retry_delays()` is exhausted; raises Deferred to come back after the
    first delay without using a retry (`x-deferrals` counts those); raises PermanentError to dead-letter
    to `<queue>.dead`. `on_retry(delivery, reason)` runs before a retry, `on_give_up(delivery,
    reason)` when a message is dead-lettered. `process` returns when the message may be acked
    and raises NotSettled when it could not be moved (it stays unacked for redelivery).
    """

    def __init__(self, queue: str, publisher: Publisher, *, on_retry: Hook | None = None,
                 on_give_up: Hook | None = None):
        self.queue = queue
        self.publisher = publisher
        self.on_retry = on_retry
        self.on_give_up = on_give_up

    def process(self, delivery: Delivery, handler: Callable[[Delivery], None]) -> None:
        token = context.attach(propagate.extract(delivery.headers))
        try:
            # Made by hand, not by opentelemetry-instrumentation-pika: that one ends its consumer
            # span on the I/O thread, while the work runs (and must be timed) on the worker thread.
            with tracer().start_as_current_span(
                f"process {self.queue}", kind=SpanKind.CONSUMER, attributes=self._span_attributes(delivery)
            ) as span:
                try:
                    handler(delivery)
                except Deferred as exc:
                    span.set_attribute("vid2mp3.outcome", "deferred")
                    self.defer(delivery, str(exc))
                except PermanentError as exc:
                    span.set_attribute("vid2mp3.outcome", "dead_lettered")
                    telemetry.record_error(span, exc)
                    self.give_up(delivery, str(exc))
                except Exception as exc:  # anything unexpected is retried, never crashes the worker
                    span.set_attribute("vid2mp3.outcome", "retried")
                    telemetry.record_error(span, exc)
                    reason = str(exc) if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
                    log.warning("message processing failed, will retry", exc_info=not isinstance(exc, TransientError),
                                extra={"queue": self.queue, "reason": reason, "retries": delivery.retries})
                    self.retry(delivery, reason)
        finally:
            context.detach(token)

    def _span_attributes(self, delivery: Delivery) -> dict[str, Any]:
        attrs = messaging_attributes(self.queue, "process", delivery.properties.message_id, len(delivery.body))
        attrs["messaging.rabbitmq.message.delivery_tag"] = delivery.delivery_tag
        attrs["vid2mp3.redelivered"] = delivery.redelivered
        attrs["vid2mp3.retries"] = delivery.retries
        return attrs

    def retry(self, delivery: Delivery, reason: str) -> None:
        """Republish to the next delay queue, or give up when every delay was used."""
        delays = config.retry_delays()
        if delivery.retries >= len(delays):
            self.give_up(delivery, f"gave up after {delivery.retries} retries: {reason}")
            return
        if self.on_retry:
            self.on_retry(delivery, reason)
        headers = dict(delivery.headers, **{"x-retries": delivery.retries + 1, "x-last-error": reason[:500]})
        self._republish(retry_queue(self.queue, delays[delivery.retries]), delivery, headers)

    def defer(self, delivery: Delivery, reason: str) -> None:
        """Republish to the first delay queue (the work queue when there is none); retries stay as they were."""
        delays = config.retry_delays()
        target = retry_queue(self.queue, delays[0]) if delays else self.queue
        deferrals = int(delivery.headers.get("x-deferrals", 0) or 0) + 1
        self._republish(target, delivery, dict(delivery.headers, **{"x-deferrals": deferrals,
                                                                    "x-last-deferral": reason[:500]}))

    def give_up(self, delivery: Delivery, reason: str) -> None:
        """Dead-letter to `<queue>.dead` with `x-death-reason`, after the give-up hook."""
        log.error("message dead-lettered", extra={"queue": self.queue, "reason": reason})
        if self.on_give_up:
            try:
                self.on_give_up(delivery, reason)
            except Exception:
                log.exception("give-up hook failed", extra={"queue": self.queue})
        headers = dict(delivery.headers, **{"x-death-reason": reason[:500], "x-dead-at-ms": int(time.time() * 1000)})
        self._republish(dead_queue(self.queue), delivery, headers)

    def _republish(self, target: str, delivery: Delivery, headers: dict) -> None:
        """Copy a message to `target` with a confirm; if that fails it stays unacked for redelivery."""
        headers = {k: v for k, v in headers.items() if k not in ("traceparent", "tracestate", "baggage")}
        try:
            self.publisher.publish(target, json_or_raw(delivery.body), headers=headers,
                                   message_id=delivery.properties.message_id, declare=False)
        except PublishError:
            log.error("could not move message, leaving it for redelivery",
                      extra={"queue": self.queue, "target": target})
            raise NotSettled() from None


def json_or_raw(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"raw": body.decode("utf-8", "replace")[:10000]}
