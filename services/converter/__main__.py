"""python -m services.converter"""
from services.common import config, messaging, telemetry, worker_process

from .conversion import Converter


def main() -> None:
    config.validate()
    telemetry.init_telemetry("converter")
    publisher = messaging.Publisher()
    converter = Converter(publisher)
    consumer = messaging.Consumer(config.env("VIDEO_QUEUE"), converter.handle, on_retry=converter.on_retry,
                                  on_give_up=converter.on_give_up, publisher=publisher)
    worker_process.serve(consumer, port_setting="CONVERTER_METRICS_PORT")


if __name__ == "__main__":
    main()
