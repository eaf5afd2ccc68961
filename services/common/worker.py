"""Process harness of the queue workers: /metrics, /healthz and /readyz over HTTP, SIGTERM handling."""
from __future__ import annotations

import logging
import signal

from . import config, metrics_http
from .messaging import Consumer

log = logging.getLogger(__name__)


def serve(consumer: Consumer) -> None:
    """Expose metrics and health, stop gracefully on SIGTERM/SIGINT, and consume until stopped."""
    port = config.env_int("METRICS_PORT")
    server = metrics_http.start(port, {"/healthz": consumer.healthy, "/readyz": consumer.connected.is_set})

    def on_signal(signum, _frame):
        log.info("stopping: finishing the message in hand", extra={"signal": signal.Signals(signum).name})
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("worker started", extra={"queue": consumer.queue, "metrics_port": port})
    try:
        consumer.run()
    finally:
        server.shutdown()
        from . import telemetry

        telemetry.flush()
        log.info("worker stopped", extra={"queue": consumer.queue})
