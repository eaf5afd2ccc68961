"""The notification worker's own metrics (emails and webhooks by outcome).

Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter, Gauge, Histogram

EMAILS = Counter("notification_emails", "Notification emails by outcome", ["result"])
WEBHOOKS = Counter("notification_webhooks", "Webhook delivery attempts by outcome", ["result"])
# Every outcome exported from the start, so dashboards and alerts see zeros rather than no series.
for _result in ("delivered", "failed", "gave_up", "refused", "duplicate"):
    WEBHOOKS.labels(_result)
WEBHOOK_TIMEOUTS = Counter("notification_webhook_timeouts", "Webhook attempts cut at the whole-exchange deadline "
                           "(WEBHOOK_TIMEOUT_SECONDS); also counted as failed or gave_up")
WEBHOOKS_DEFERRED = Counter("notification_webhooks_deferred", "Webhook deliveries put back for a while because their "
                            "user already had WEBHOOK_MAX_PER_TENANT in progress in this process")
WEBHOOKS_IN_FLIGHT = Gauge("notification_webhooks_in_flight", "Webhook deliveries in progress in this process")
WEBHOOK_SLOTS = Gauge("notification_webhook_slots",
                      "Webhook deliveries this process may make at once (WEBHOOK_CONCURRENCY)")
WEBHOOK_DURATION = Histogram("notification_webhook_duration_seconds", "Time of one webhook attempt, the whole exchange",
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60))
# kind: email or webhook (the two consumers); the liveness probe fails past NOTIFICATION_HANDLER_DEADLINE_SECONDS.
HANDLER_OLDEST = Gauge("notification_handler_oldest_seconds", "How long the longest-running handler in hand has run",
                       ["kind"])
