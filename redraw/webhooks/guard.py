"""The SSRF rules of webhook URLs.

A URL must be https with a plain host and no credentials; its host is resolved and every address
checked: loopback, private, link-local, CGNAT (100.64.0.0/10), multicast, reserved and unspecified
addresses are refused, in IPv4-mapped (and NAT64) IPv6 forms too. ``allow_private``
(``REDRAW_WEBHOOK_ALLOW_PRIVATE``) lifts the address rule and allows http. The sender connects to
the address checked here (``Target.address``), never resolving the name again.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Optional, Tuple, Union
from urllib.parse import urlsplit

from ..errors import RedrawError

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class Refused(RedrawError):
    """A webhook URL the SSRF rules refuse; the message names why, never the URL."""

    code = "WebhookRefused"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str        # the name, for Host, SNI and the certificate check
    port: int
    path: str        # path and query, as sent
    address: str     # the checked address the connection goes to


def url_problem(url: str, allow_private: bool) -> str:
    """What the URL's form breaks ('' when nothing): no DNS lookup (an IP literal is checked)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "must be a valid https URL"
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme.lower() not in schemes or not host:
        return ("must be an http(s) URL with a host" if allow_private else
                "must be an https URL with a host (http only with REDRAW_WEBHOOK_ALLOW_PRIVATE=true)")
    if parts.username or parts.password:
        return "must not carry user credentials"
    if any(c.isspace() for c in url) or port == 0:
        return "must be a valid https URL"
    if not allow_private:
        if host.lower().rstrip(".") in _LOCAL_NAMES:
            return "must not name a loopback host (REDRAW_WEBHOOK_ALLOW_PRIVATE=true allows it)"
        literal = _literal(host)
        if literal is not None and address_problem(literal):
            return address_problem(literal)
    return ""


def _literal(host: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def address_problem(ip: Union[ipaddress.IPv4Address, ipaddress.IPv6Address]) -> str:
    """Why a webhook may not go to this address ('' when it may)."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if mapped is not None:
            return address_problem(mapped)
    for test, what in ((ip.is_loopback, "loopback"), (ip.is_link_local, "link-local"),
                       (ip.is_multicast, "multicast"), (ip.is_unspecified, "unspecified"),
                       (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "CGNAT (100.64.0.0/10)"),
                       (ip.is_private, "private"), (ip.is_reserved, "reserved"), (not ip.is_global, "non-public")):
        if test:
            return (f"resolves to a {what} address, which webhooks may not reach "
                    "(REDRAW_WEBHOOK_ALLOW_PRIVATE=true allows it)")
    return ""


def resolve(url: str, allow_private: bool) -> Target:
    """The URL checked and resolved: every address its host resolves to must pass; Refused otherwise."""
    problem = url_problem(url, allow_private)
    if problem:
        raise Refused(f"the webhook URL {problem}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused("the webhook URL's host does not resolve") from None
    addresses: Tuple[str, ...] = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise Refused("the webhook URL's host does not resolve")
    if not allow_private:
        for address in addresses:
            problem = address_problem(ipaddress.ip_address(address.split("%", 1)[0]))
            if problem:
                raise Refused(f"the webhook URL's host {problem}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port, path, addresses[0])


def safe_url(url: Optional[str]) -> Optional[str]:
    """The URL as it may be shown: no query string, fragment or credentials."""
    if not url:
        return None
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}{parts.path}"
