"""The webhook egress guard: which addresses the dispatcher may connect to.

The check runs on the address a socket is about to connect to (aiohttp's
``socket_factory``), after name resolution, so a name that resolves to a private address —
also one that changes between registration and delivery (DNS rebinding) — and IP literals
are held to the same rule. ``PICLOUD_WEBHOOK_ALLOWED_NETWORKS`` lists the exceptions.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType

from picloud.settings import Networks

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = ipaddress.ip_address("169.254.169.254")
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class EgressBlocked(OSError):
    """A connection the guard refused; ``strerror`` is the recorded reason."""


def _unwrapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, IPv4-compatible or 6to4 IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return ip


def _kind(ip: IPAddress) -> str | None:
    if ip == METADATA:
        return "the cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a carrier-grade NAT address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def blocked_reason(address: str, allowed: Networks) -> str | None:
    """Why the dispatcher may not connect to ``address``; None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    inner = _unwrapped(ip)
    if any(ip in net or inner in net for net in allowed):
        return None
    kind = _kind(inner) if inner != ip else None
    kind = kind or _kind(ip)
    return None if kind is None else f"blocked: {address} is {kind}"


def guarded_socket_factory(allowed: Networks) -> Any:
    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        reason = blocked_reason(str(sockaddr[0]), allowed)
        if reason is not None:
            raise EgressBlocked(errno.EACCES, reason)
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


def guarded_connector(allowed: Networks, limit: int) -> aiohttp.TCPConnector:
    """A connector that refuses every address the guard blocks, at connection time."""
    return aiohttp.TCPConnector(limit=limit, socket_factory=guarded_socket_factory(allowed))


def blocked_message(exc: aiohttp.ClientConnectorError) -> str | None:
    """The guard's reason when ``exc`` is a refused connection (the first of several)."""
    if isinstance(exc.os_error, EgressBlocked):
        return str(exc.os_error.strerror)
    text = str(exc.os_error)
    if "blocked: " in text:
        return text[text.index("blocked: ") :]
    return None
