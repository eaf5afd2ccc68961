"""Credentials out of telemetry: the one scrubber that every exported span and every log line passes.

Instrumentation puts URLs into span attributes and names (http.target, http.url, url.full, url.path,
url.query, the outgoing requests' URLs) and errors put them into messages, so what is scrubbed is the
text, wherever it sits: a signed link's token (`/links/<token>`), query values (a webhook URL may carry
its receiver's secret there; our own `fid`, `limit` and `offset` are kept), user:password in a URL,
Bearer/Basic credentials, JWTs, API keys (`v2m_…`) and webhook secrets. Captured headers that carry
credentials are dropped by name.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

REDACTED = "[redacted]"
KEPT_QUERY_NAMES = frozenset({"fid", "limit", "offset"})  # ids and paging of our own API: no credential
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy_authorization", "cookie", "set_cookie", "x_api_key"})

_LINK_TOKEN = re.compile(r"(/links/)[^/?#\s\"'<>]+")
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;\s\"'<>]+)=([^&#;\s\"'<>]*)")
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s\"'<>]+@")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=]+")
# No \b before it: a key glued to a word character (`%3Dv2m_…` in an encoded query, `x_v2m_…`) is one too.
_API_KEY = re.compile(r"v2m_[A-Za-z0-9_]+")
# What each pattern above cannot match without: one search spares the seven of a value that has none
# (most do: span names, routes, ids, counts), the exporters' and loggers' largest cost (issue 24).
_ANY_MARK = re.compile(r"/links/|[?&;@]|bearer|basic|eyJ|v2m_|whsec_", re.IGNORECASE)


def text(value: str) -> str:
    """`value` with every credential it may carry replaced by [redacted]."""
    if not value or not _ANY_MARK.search(value):
        return value
    value = _LINK_TOKEN.sub(rf"\1{REDACTED}", value)
    value = _QUERY_PAIR.sub(_query_pair, value)
    value = _USERINFO.sub(rf"\1{REDACTED}@", value)
    value = _AUTH_SCHEME.sub(rf"\1 {REDACTED}", value)
    value = _JWT.sub(REDACTED, value)
    value = _API_KEY.sub(f"v2m_{REDACTED}", value)
    return _WEBHOOK_SECRET.sub(f"whsec_{REDACTED}", value)


def _query_pair(match: re.Match) -> str:
    sep, name, _ = match.groups()
    return match.group(0) if name.lower() in KEPT_QUERY_NAMES else f"{sep}{name}={REDACTED}"


def value(item: Any) -> Any:
    """A span attribute or log field value, scrubbed (strings, also inside lists, tuples and dicts)."""
    if isinstance(item, str):
        return text(item)
    if isinstance(item, (list, tuple)):
        return type(item)(value(x) for x in item)
    if isinstance(item, dict):
        return {key: value(x) for key, x in item.items()}
    return item


def attributes(items: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Span or event attributes, scrubbed; captured credential headers replaced whole."""
    if items is None:
        return None
    return {key: REDACTED if _credential_header(key) else value(item) for key, item in items.items()}


def _credential_header(key: str) -> bool:
    """http.request.header.authorization and the like (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*)."""
    if ".header." not in key:
        return False
    return key.rsplit(".header.", 1)[1].replace("-", "_").lower() in CREDENTIAL_HEADERS
