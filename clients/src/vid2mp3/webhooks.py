"""Verify the webhooks the notification service sends (Standard Webhooks: `webhook-id`,
`webhook-timestamp`, `webhook-signature`), with the secret `GET /me` shows (`whsec_…`)."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Union

from .errors import Vid2mp3Error


class InvalidWebhook(Vid2mp3Error):
    """Forged, altered, or older than 5 minutes (a replay): do not act on it."""


def verify_webhook(secret: str, body: Union[bytes, str], headers: Mapping[str, str]) -> Dict[str, Any]:
    """The event (`{"type": "job.done", "data": {...the job view...}}`) if the request is genuine;
    InvalidWebhook otherwise. Pass the body exactly as received (bytes), before any JSON parsing."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError  # only where webhooks are received

    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        return Webhook(secret).verify(body, lowered)
    except WebhookVerificationError as exc:
        raise InvalidWebhook(f"webhook not verified: {exc}") from None
