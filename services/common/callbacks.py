"""Which webhook targets may be called: the one check against server-side request forgery.

`callback_url(value)` is what an upload (form field, tus metadata) checks: the scheme and, when
the host is an address literal, that address. `resolve(url)` is what a delivery checks right
before connecting: every address the name resolves to must be allowed, and the delivery then
connects to the returned address itself, so a second DNS answer cannot swap in a private one.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import config

MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """The URL may not be called; the message says why, in words for the user."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (the Host header and the TLS server name)
    port: int
    path: str  # with the query
    address: str  # the checked address to connect to


def callback_url(value: str | None) -> str | None:
    """The cleaned callback URL, None when absent/blank; CallbackRefused when it can never be called."""
    if value is None or not value.strip():
        return None
    url = value.strip()
    parts = _parts(url)
    literal = _literal(parts.hostname)
    if literal is not None:
        check_address(literal)
    return url


def _parts(url: str):
    if len(url) > MAX_URL_LENGTH or any(ord(ch) < 33 for ch in url):
        raise CallbackRefused(f"callback_url must be a URL of at most {MAX_URL_LENGTH} characters without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise CallbackRefused("callback_url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("callback_url must be an http or https URL")
    if not parts.hostname:
        raise CallbackRefused("callback_url has no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry credentials")  # they would leak into logs and views
    return parts


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(x.strip(), strict=False)
            for x in config.env("WEBHOOK_ALLOWED_NETWORKS").split(",") if x.strip()]


def check_address(address: IPAddress) -> None:
    """CallbackRefused unless the address is public or inside WEBHOOK_ALLOWED_NETWORKS."""
    # ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address it carries.
    plain = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address
    if any(plain in network for network in allowed_networks()):
        return
    # is_global is False for loopback, private, link-local, reserved, unspecified, shared (CGN) and
    # documentation ranges; multicast is checked apart because some multicast ranges count as global.
    if not plain.is_global or plain.is_multicast:
        raise CallbackRefused(f"callback_url points at a non-public address ({plain})")


def resolve(url: str) -> Target:
    """The URL's target with an address every resolution of its name passed; CallbackRefused otherwise."""
    parts = _parts(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackRefused(f"callback_url host does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:  # one forbidden answer refuses all: a mixed answer is a rebinding attempt
        check_address(address)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))
