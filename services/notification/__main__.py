"""python -m services.notification"""
import os

from services.common import config, messaging, telemetry, worker

from .worker import handle


def main() -> None:
    os.environ.setdefault("METRICS_PORT", "9101")
    config.validate()
    telemetry.init_telemetry("notification")
    worker.serve(messaging.Consumer(config.env("MP3_QUEUE"), handle))


if __name__ == "__main__":
    main()
