"""python -m services.converter"""
import logging

from services.common import config, messaging, telemetry, worker_process

from .command import ffmpeg_executable
from .conversion import Converter

log = logging.getLogger(__name__)


def main() -> None:
    config.validate()
    telemetry.init_telemetry("converter")
    # found (and checked to run) before the first job, so a missing one stops the worker at start
    log.info("ffmpeg found", extra={"ffmpeg": ffmpeg_executable()})
    publisher = messaging.Publisher()
    converter = Converter(publisher)
    consumer = messaging.Consumer(config.env("VIDEO_QUEUE"), converter.handle, on_retry=converter.on_retry,
                                  on_give_up=converter.on_give_up, publisher=publisher)
    worker_process.serve(consumer, port_setting="CONVERTER_METRICS_PORT")


if __name__ == "__main__":
    main()
