"""The notification worker's own metrics (emails by outcome). Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter

EMAILS = Counter("notification_emails", "Notification emails by outcome", ["result"])
