"""The process harness of a queue worker (converter, notification): /metrics, /healthz and /readyz over HTTP,
SIGTERM handling. (A gunicorn worker class is another thing: gunicorn_worker.py.)"""
from __future__ import annotations

import logging
import signal
import threading

from . import config, metrics_http
from .messaging import Consumer

log = logging.getLogger(__name__)


def serve(*consumers: Consumer, port_setting: str) -> None:
    """Expose metrics and health on the port named by `port_setting` (the worker's <SERVICE>_METRICS_PORT),
    stop gracefully on SIGTERM/SIGINT, and consume until stopped.

    Several consumers (the notification worker's emails and webhooks) each run on a thread of their
    own; the process is healthy and ready only when every one of them is."""
    port = config.env_int(port_setting)
    others = [threading.Thread(target=consumer.run, name=f"consume-{consumer.queue}", daemon=True)
              for consumer in consumers[1:]]

    def healthy() -> bool:
        return all([c.healthy() for c in consumers]) and all(thread.is_alive() for thread in others)

    server = metrics_http.start(port, {"/healthz": healthy,
                                       "/readyz": lambda: all(c.connected.is_set() for c in consumers)})

    def on_signal(signum, _frame):
        log.info("stopping: finishing the message in hand", extra={"signal": signal.Signals(signum).name})
        for consumer in consumers:
            consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    queues = [consumer.queue for consumer in consumers]
    log.info("worker started", extra={"queue": ",".join(queues), "metrics_port": port})
    for thread in others:
        thread.start()
    try:
        consumers[0].run()
    finally:
        for thread in others:
            thread.join(timeout=60)  # each finishes its messages in hand, bounded by their deadlines
        server.shutdown()
        from . import telemetry

        telemetry.flush()
        log.info("worker stopped", extra={"queue": ",".join(queues)})
