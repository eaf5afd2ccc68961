"""One webhook POST, signed per the Standard Webhooks specification, to a checked address.

The URL is checked again here (services/common/callbacks.py), the name resolved once, and the
connection made to that checked address (the Host header and TLS server name keep the name), so
DNS cannot answer differently between check and connect. Redirects are not followed; at most
RESPONSE_LIMIT bytes of the answer are read. The whole exchange (name resolution, connect, TLS,
request, status line, headers, body) has one deadline, WEBHOOK_TIMEOUT_SECONDS: a receiver that
answers a byte at a time is cut there, however often it sends.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from services.common import config
from services.common.callbacks import CallbackRefused, Target, resolve
from services.common.pinned_http import Deadline as _Deadline
from services.common.pinned_http import DeadlinePassed
from services.common.pinned_http import PinnedHTTP as _PinnedHTTP
from services.common.pinned_http import PinnedHTTPS as _PinnedHTTPS
from services.common.webhook_secrets import key_of

RESPONSE_LIMIT = 16 * 1024  # what a receiver says back is only logged: never read more
USER_AGENT = "vid2mp3-webhooks/1"
# getaddrinfo cannot be given a timeout: it runs here and the delivery stops waiting at its deadline.
_resolver = ThreadPoolExecutor(max_workers=max(8, config.env_int("WEBHOOK_CONCURRENCY")),
                               thread_name_prefix="webhook-dns")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    refused: bool = False  # the target is forbidden: retrying cannot help
    timed_out: bool = False  # cut at the whole-exchange deadline


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` keyed with the secret's decoded bytes."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key_of(secret), signed, hashlib.sha256).digest()).decode()


def event_body(event_type: str, data: dict) -> bytes:
    return json.dumps({"type": event_type, "data": data}, separators=(",", ":"), sort_keys=True).encode()


def _resolve(url: str, deadline: _Deadline) -> Target:
    """callbacks.resolve, given no longer than the deadline leaves (CallbackRefused passes through)."""
    future = _resolver.submit(resolve, url)
    try:
        return future.result(timeout=deadline.remaining())
    except FutureTimeout:
        deadline.passed = True
        raise DeadlinePassed() from None


def deliver(url: str, secret: str, webhook_id: str, body: bytes) -> Outcome:
    """POST the event once; a 2xx is delivered, anything else (3xx included) is a failed attempt."""
    deadline = _Deadline(config.env_float("WEBHOOK_TIMEOUT_SECONDS"))
    try:
        return _exchange(url, secret, webhook_id, body, deadline)
    except CallbackRefused as exc:
        return Outcome(False, error=str(exc), refused=True)
    except (OSError, http.client.HTTPException, DeadlinePassed) as exc:  # timeouts, refusals, TLS, garbage
        if deadline.passed or isinstance(exc, TimeoutError):
            return Outcome(False, error=f"timed out: no whole answer within {deadline.seconds:g} s", timed_out=True)
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:300] or "connection failed")
    finally:
        deadline.release()


def _exchange(url: str, secret: str, webhook_id: str, body: bytes, deadline: _Deadline) -> Outcome:
    target = _resolve(url, deadline)
    timestamp = int(time.time())  # of this attempt: receivers reject old timestamps as replays
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": webhook_id,
               "webhook-timestamp": str(timestamp), "webhook-signature": signature(secret, webhook_id, timestamp, body)}
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, deadline)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(RESPONSE_LIMIT)
        code = response.status
        if deadline.passed:  # a cut socket reads as the end of the body: not an answer in time
            raise DeadlinePassed()
    finally:
        deadline.release()  # before the close: the timer must not touch a descriptor that is reused
        connection.close()
    if 200 <= code < 300:
        return Outcome(True, code)
    return Outcome(False, code, "redirect not followed" if 300 <= code < 400 else f"HTTP {code}")
