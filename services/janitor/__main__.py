"""python -m services.janitor [--once]: one round (a Kubernetes CronJob), or a round every
JANITOR_INTERVAL_SECONDS until SIGTERM (the local stack)."""
from __future__ import annotations

import argparse
import logging
import signal
import threading

from services.common import config, telemetry

from . import run_once

log = logging.getLogger("services.janitor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="run one round and exit")
    once = parser.parse_args().once
    config.validate()
    telemetry.init_telemetry("janitor")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        try:
            with telemetry.tracer(__name__).start_as_current_span("janitor round"):
                run_once()
        except Exception:  # MongoDB down: the next round tries again
            log.exception("janitor round failed")
            if once:
                raise SystemExit(1) from None  # logged just above; the exit code is the whole message
        if once:
            break
        stop.wait(config.env_float("JANITOR_INTERVAL_SECONDS"))
    telemetry.flush()


if __name__ == "__main__":
    main()
