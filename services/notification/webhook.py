"""One webhook POST, signed per the Standard Webhooks specification, to a checked address.

The URL is checked again here (services/common/callbacks.py), the name resolved once, and the
connection made to that checked address (the Host header and TLS server name keep the name), so
DNS cannot answer differently between check and connect. Redirects are not followed; at most
RESPONSE_LIMIT bytes of the answer are read; every socket operation has WEBHOOK_TIMEOUT_SECONDS.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass

from services.common import config
from services.common.callbacks import CallbackRefused, Target, resolve
from services.common.webhook_secrets import key_of

RESPONSE_LIMIT = 16 * 1024  # what a receiver says back is only logged: never read more
USER_AGENT = "vid2mp3-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    refused: bool = False  # the target is forbidden: retrying cannot help


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` keyed with the secret's decoded bytes."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key_of(secret), signed, hashlib.sha256).digest()).decode()


def event_body(event_type: str, data: dict) -> bytes:
    return json.dumps({"type": event_type, "data": data}, separators=(",", ":"), sort_keys=True).encode()


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.address = target.address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # certificate checked against the name


def deliver(url: str, secret: str, webhook_id: str, body: bytes) -> Outcome:
    """POST the event once; a 2xx is delivered, anything else (3xx included) is a failed attempt."""
    try:
        target = resolve(url)
    except CallbackRefused as exc:
        return Outcome(False, error=str(exc), refused=True)
    timestamp = int(time.time())  # of this attempt: receivers reject old timestamps as replays
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": webhook_id,
               "webhook-timestamp": str(timestamp), "webhook-signature": signature(secret, webhook_id, timestamp, body)}
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, config.env_float("WEBHOOK_TIMEOUT_SECONDS"))
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(RESPONSE_LIMIT)
        code = response.status
    except (OSError, http.client.HTTPException) as exc:  # timeouts, refused connections, TLS, garbage answers
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:300] or "connection failed")
    finally:
        connection.close()
    if 200 <= code < 300:
        return Outcome(True, code)
    return Outcome(False, code, "redirect not followed" if 300 <= code < 400 else f"HTTP {code}")
