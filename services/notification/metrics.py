"""The notification worker's own metrics (emails and webhooks by outcome). Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter

EMAILS = Counter("notification_emails", "Notification emails by outcome", ["result"])
WEBHOOKS = Counter("notification_webhooks", "Webhook delivery attempts by outcome", ["result"])
# Every outcome exported from the start, so dashboards and alerts see zeros rather than no series.
for _result in ("delivered", "failed", "gave_up", "refused", "duplicate"):
    WEBHOOKS.labels(_result)
