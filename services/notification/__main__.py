"""python -m services.notification"""
from services.common import config, links, messaging, telemetry, worker_process

from . import deliveries, metrics
from .emails import handle


def consumers() -> tuple[messaging.Consumer, messaging.Consumer]:
    """The emails (one at a time) and the webhooks (WEBHOOK_CONCURRENCY at once), each on its own queue,
    so a slow receiver never holds up an email; both fail liveness past the handler deadline."""
    deadline = config.env_float("NOTIFICATION_HANDLER_DEADLINE_SECONDS")
    emails = messaging.Consumer(config.env("MP3_QUEUE"), handle, publisher=deliveries.PUBLISHER,
                                handler_deadline=deadline)
    webhooks = messaging.Consumer(config.env("WEBHOOK_QUEUE"), deliveries.handle, handler_deadline=deadline,
                                  concurrency=max(1, config.env_int("WEBHOOK_CONCURRENCY")))
    metrics.WEBHOOK_SLOTS.set(webhooks.concurrency)
    metrics.HANDLER_OLDEST.labels("email").set_function(emails.oldest_handler_seconds)
    metrics.HANDLER_OLDEST.labels("webhook").set_function(webhooks.oldest_handler_seconds)
    return emails, webhooks


def main() -> None:
    config.validate()
    links.signing_key()  # a missing LINK_SECRET stops the start, not the first email
    telemetry.init_telemetry("notification")
    worker_process.serve(*consumers(), port_setting="NOTIFICATION_METRICS_PORT")


if __name__ == "__main__":
    main()
