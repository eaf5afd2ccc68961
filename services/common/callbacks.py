"""Which webhook targets may be called: the one check against server-side request forgery.

`callback_url(value)` is what an upload (form field, tus metadata) checks: the scheme and, when
the host is an address literal, that address. A host a resolver would read as a number in another
spelling (`0x7f000001`, `2130706433`, `127.1`, `0177.0.0.1`) is refused outright: only the plain
dotted quad is an address here. An IPv6 address that carries an IPv4 one (mapped, compatible,
NAT64 `64:ff9b::/96`, 6to4) is judged by the IPv4 address it carries; a local-use NAT64 prefix
(`64:ff9b:1::/48`) and Teredo (`2001::/32`) are never public. `resolve(url)` is what a delivery checks right
before connecting: every address the name resolves to must be allowed, and the delivery then
connects to the returned address itself, so a second DNS answer cannot swap in a private one.

A URL import's source (services/converter/fetch.py) passes the same guard with its own `Guard`
(`IMPORT`): its field name in messages and its own allowed networks, IMPORT_ALLOWED_NETWORKS.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import config

MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 ranges whose last 32 bits are an IPv4 address that the packets end up at.
LAST_32_BITS_CARRIERS = (ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, still routed by some)
                         ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
                         ipaddress.ip_network("64:ff9b::/96"))  # NAT64 well-known prefix
# Not public although Python's is_global says so: a local-use NAT64 prefix (RFC 8215) carries an IPv4
# address where the operator's prefix length puts it, which cannot be known here; Teredo is listed for
# the record (Python already counts 2001::/23 as not global).
NEVER_PUBLIC = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("2001::/32"))
# A resolver's reading of a host that ends in a number (WHATWG URL "ends in a number"): decimal, octal or hex.
NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$", re.IGNORECASE)


class CallbackRefused(ValueError):
    """The URL may not be called; the message says why, in words for the user."""


@dataclass(frozen=True)
class Guard:
    """Whose URL is checked: the name messages give it, and the setting of the networks it may reach
    although they are not public."""

    field: str
    allowed_setting: str


WEBHOOK = Guard("callback_url", "WEBHOOK_ALLOWED_NETWORKS")
# Its own list: letting webhooks POST to an internal receiver must not let users read internal URLs.
IMPORT = Guard("source_url", "IMPORT_ALLOWED_NETWORKS")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (the Host header and the TLS server name)
    port: int
    path: str  # with the query
    address: str  # the checked address to connect to


def callback_url(value: str | None, guard: Guard = WEBHOOK) -> str | None:
    """The cleaned callback URL, None when absent/blank; CallbackRefused when it can never be called."""
    if value is None or not value.strip():
        return None
    url = value.strip()
    parts = _parts(url, guard)
    literal = _literal(parts.hostname)
    if literal is not None:
        check_address(literal, guard)
    return url


def _parts(url: str, guard: Guard = WEBHOOK):
    name = guard.field
    if len(url) > MAX_URL_LENGTH or any(ord(ch) < 33 for ch in url):
        raise CallbackRefused(f"{name} must be a URL of at most {MAX_URL_LENGTH} characters without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise CallbackRefused(f"{name} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused(f"{name} must be an http or https URL")
    if not parts.hostname:
        raise CallbackRefused(f"{name} has no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused(f"{name} must not carry credentials")  # they would leak into logs and views
    if _numeric_spelling(parts.hostname):
        raise CallbackRefused(f"{name} host is a number that is not a plain dotted-quad IPv4 address")
    return parts


def _numeric_spelling(host: str) -> bool:
    """True for a host that resolvers read as an IPv4 number but that is not written as a.b.c.d."""
    if ":" in host:  # an IPv6 literal: ipaddress reads it the one way a resolver does
        return False
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:  # "127.0.0.1." ends in the root label
        labels.pop()
    if not NUMERIC_LABEL.match(labels[-1]):
        return False  # a name, even if it starts with digits
    try:
        ipaddress.IPv4Address(host)  # decimal, four parts, no leading zeros
        return False
    except ValueError:
        return True


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def allowed_networks(guard: Guard = WEBHOOK) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(x.strip(), strict=False)
            for x in config.env(guard.allowed_setting).split(",") if x.strip()]


def check_address(address: IPAddress, guard: Guard = WEBHOOK) -> None:
    """CallbackRefused unless the address is public or inside the guard's allowed networks
    (WEBHOOK_ALLOWED_NETWORKS for webhooks); an IPv6 address that carries an IPv4 one is judged by the
    IPv4 address alone."""
    _check_plain(carried_ipv4(address) or address, guard)


def carried_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (::ffff:10.0.0.1 reaches 10.0.0.1); None if none."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:  # 2002:AABB:CCDD::/48 routes to the 6to4 relay at AA.BB.CC.DD
        return address.sixtofour
    if any(address in network for network in LAST_32_BITS_CARRIERS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _check_plain(plain: IPAddress, guard: Guard) -> None:
    if any(plain in network for network in allowed_networks(guard)):
        return
    # is_global is False for loopback, private, link-local, reserved, unspecified, shared (CGN) and
    # documentation ranges; multicast is checked apart because some multicast ranges count as global.
    if not plain.is_global or plain.is_multicast or any(plain in network for network in NEVER_PUBLIC):
        raise CallbackRefused(f"{guard.field} points at a non-public address ({plain})")


def _address_of(host: str | int) -> IPAddress:
    """The address in a getaddrinfo answer's sockaddr, without an IPv6 zone (fe80::1%eth0)."""
    # answers for a host name are IPv4 or IPv6, whose sockaddr starts with the address as text
    # (the int is for families such as AF_PACKET, which getaddrinfo does not return here)
    assert isinstance(host, str)
    return ipaddress.ip_address(host.split("%")[0])


def resolve(url: str, guard: Guard = WEBHOOK) -> Target:
    """The URL's target with an address every resolution of its name passed; CallbackRefused otherwise."""
    parts = _parts(url, guard)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackRefused(f"{guard.field} host does not resolve: {exc}") from None
    addresses = [_address_of(info[4][0]) for info in infos]
    for address in addresses:  # one forbidden answer refuses all: a mixed answer is a rebinding attempt
        check_address(address, guard)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))
