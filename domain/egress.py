"""Where a webhook may go: the addresses a delivery refuses (loopback, private, link-local,
multicast, ...) unless an allow-list names them, and the spellings a URL host hides them in."""

from __future__ import annotations

import ipaddress
import unicodedata
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Networks = tuple[IPNetwork, ...]

LOOPBACK: Networks = (ip_network("127.0.0.0/8"), ip_network("::1/128"))

# Not for webhooks, first match wins (IANA's special-purpose address registries, RFC 6890).
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ip_network(net), phrase)
    for net, phrase in [
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a private (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),  # 169.254.169.254: cloud metadata
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved address"),
        ("192.0.2.0/24", "a reserved (documentation) address"),
        ("192.88.99.0/24", "a reserved address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a reserved (benchmarking) address"),
        ("198.51.100.0/24", "a reserved (documentation) address"),
        ("203.0.113.0/24", "a reserved (documentation) address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),  # and 255.255.255.255, broadcast
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a private (local NAT64) address"),
        ("100::/64", "a reserved (discard) address"),
        ("2001::/23", "a reserved address"),  # IETF protocol assignments, Teredo
        ("2001:db8::/32", "a reserved (documentation) address"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ]
)
_GLOBAL_UNICAST = ip_network("2000::/3")  # IPv6 outside it is unassigned or special
_NAT64 = ip_network("64:ff9b::/96")


def parse_networks(text: str) -> Networks:
    """ "127.0.0.0/8, ::1/128, 10.1.2.3" (an address is its /32 or /128); "none" or "" for
    none. Raises ValueError naming the entry it cannot read."""
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if [e.lower() for e in entries] == ["none"]:
        return ()
    networks = []
    for entry in entries:
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP network (like 10.1.2.0/24)") from None
    return tuple(networks)


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries to: IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _phrase(address: IPAddress) -> str | None:
    for network, phrase in _REFUSED:
        if address in network:
            return phrase
    if isinstance(address, IPv6Address) and address not in _GLOBAL_UNICAST:
        return "a reserved address"
    return None


def refused_as(address: IPAddress, allowed: Networks = ()) -> str | None:
    """What makes `address` refused ("a private address"), or None when a delivery may connect
    to it: a public address, or one `allowed` names. An IPv6 address that carries an IPv4 one
    is judged by that."""
    inner = embedded_ipv4(address) if isinstance(address, IPv6Address) else None
    if any(a in net for net in allowed for a in (address, inner) if a is not None):
        return None
    if inner is not None:
        phrase = _phrase(inner)
        return None if phrase is None else f"{phrase} ({inner} inside IPv6)"
    return _phrase(address)


def why_refused(address: IPAddress, allowed: Networks = ()) -> str | None:
    """Why a delivery must not connect to `address` ("10.0.0.5 is a private address"), or
    None when it may."""
    phrase = refused_as(address, allowed)
    return None if phrase is None else f"{address} is {phrase}"


def _ipv4_number(part: str) -> int:
    """One part of an inet_aton-style address: 0x.. hex, 0.. octal, else decimal."""
    digits, base = part, 10
    if part[:2] == "0x":
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    if not digits or any(c not in "0123456789abcdef"[:base] for c in digits):
        raise ValueError(part)
    return int(digits, base)


def _loose_ipv4(host: str) -> IPv4Address | None:
    """What the C resolver reads as an IPv4 address beyond dotted decimal: 2130706433,
    0x7f000001, 0177.0.0.1, 127.1. None when the host is not all numbers."""
    parts = host.split(".")
    try:
        numbers = [_ipv4_number(p) for p in parts]
    except ValueError:
        return None
    if not 1 <= len(numbers) <= 4:
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (24 - 8 * i)
    return IPv4Address(value)


def host_address(host: str) -> IPAddress | None:
    """The address a URL host spells by itself, however spelled (dotted, integer, hex, octal,
    short, IPv6 with or without brackets, full-width digits); None for a name."""
    text = unicodedata.normalize("NFKC", host).strip().lower().removesuffix(".")
    text = text.removeprefix("[").removesuffix("]")
    try:
        return ip_address(text)
    except ValueError:
        return _loose_ipv4(text)


def why_host_refused(host: str, allowed: Networks = ()) -> str | None:
    """What can be known from a URL host before any lookup: an address in a refused range, in
    any spelling, or a localhost name (unless `allowed` names both loopback addresses)."""
    address = host_address(host)
    if address is not None:
        return why_refused(address, allowed)
    name = unicodedata.normalize("NFKC", host).strip().lower().removesuffix(".")
    loopback_allowed = not any(why_refused(ip_address(a), allowed) for a in ("127.0.0.1", "::1"))
    if (name == "localhost" or name.endswith(".localhost")) and not loopback_allowed:
        return f"{name} is a loopback name"
    return None
