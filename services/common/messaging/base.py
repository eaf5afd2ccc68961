"""What every part of the messaging package shares: errors, connection settings, the queue
topology, span attributes, reconnect counting, and the Delivery handed to a handler."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from .. import config, metrics, telemetry

# The logger and the tracer (instrumentation scope) of every module of the package keep the name
# they had when it was one module: log filters and the tests select on it.
NAME = "services.common.messaging"
log = logging.getLogger(NAME)


def tracer():
    return telemetry.tracer(NAME)


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


class Deferred(Exception):
    """Not now (a per-tenant cap is reached): back through the first delay queue, not counted as a retry."""


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


def messaging_attributes(queue: str, operation: str, message_id: str | None, size: int) -> dict[str, Any]:
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
