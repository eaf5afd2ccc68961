"""python -m services.notification"""
import os

from services.common import config, links, messaging, telemetry, worker

from .worker import handle


def main() -> None:
    os.environ.setdefault("METRICS_PORT", "9101")
    config.validate()
    links.signing_key()  # a missing LINK_SECRET stops the start, not the first email
    telemetry.init_telemetry("notification")
    worker.serve(messaging.Consumer(config.env("MP3_QUEUE"), handle))


if __name__ == "__main__":
    main()
