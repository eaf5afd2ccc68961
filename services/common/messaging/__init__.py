"""RabbitMQ: queue topology, confirmed publishing, and a consumer that works off the I/O thread.

Rules (ARCHITECTURE.md): queues are declared by the code that uses them; every publish is
persistent, `mandatory` and confirmed; a consumer acks only after its effect is durable;
transient failures go through delay queues with growing back-off, and exhausted or
permanent failures go to `<queue>.dead`. W3C trace context travels in message headers.

Callers use `from services.common import messaging` and the names below:
- base.py: errors, connection settings, topology, span attributes, reconnect counting, Delivery;
- publishing.py: Publisher (one confirmed connection) and PublisherPool (threads of one process);
- retry.py: RetryPolicy (the `process` span, retries through delay queues, dead-lettering);
- consuming.py: Consumer (connection, consume loop, reconnects with jittered Backoff, acks).
"""
from .base import (CONNECTION_ERRORS, Deferred, Delivery, PermanentError, PublishError, TransientError,
                   connection_parameters, count_reconnect, dead_queue, declare_topology, keepalive_interval,
                   messaging_attributes, retry_queue)
from .consuming import Backoff, Consumer
from .publishing import Publisher, PublisherPool
from .retry import NotSettled, RetryPolicy

__all__ = [
    "CONNECTION_ERRORS", "Backoff", "Consumer", "Deferred", "Delivery", "NotSettled", "PermanentError", "PublishError",
    "Publisher", "PublisherPool", "RetryPolicy", "TransientError", "connection_parameters", "count_reconnect",
    "dead_queue", "declare_topology", "keepalive_interval", "messaging_attributes", "retry_queue",
]
