"""Deciding whether a URL may be requested, before and after DNS resolution.

The URL is parsed by httpx, the same parser the client uses, so the checker and the connector
cannot disagree about the host. Numeric host forms that resolvers accept (`2130706433`,
`0177.0.0.1`, `0x7f.1`, `127.1`) are decoded the way they would be resolved and refused unless
the allowlist covers the decoded address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from egress.policy import Category, EgressPolicy, IPAddress

DEFAULT_PORTS = {"http": 80, "https": 443}

_RANGES: tuple[tuple[Category, tuple[str, ...]], ...] = (
    (Category.UNSPECIFIED, ("0.0.0.0/8", "::/128")),
    (Category.LOOPBACK, ("127.0.0.0/8", "::1/128")),
    (Category.PRIVATE, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")),
    (Category.LINK_LOCAL, ("169.254.0.0/16", "fe80::/10")),
    (Category.UNIQUE_LOCAL, ("fc00::/7",)),
    (Category.IPV4_MAPPED, ("::ffff:0:0/96",)),
    (
        Category.IPV4_TRANSLATED,
        ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"),
    ),
    (Category.MULTICAST, ("224.0.0.0/4", "ff00::/8")),
    (Category.RESERVED, ("240.0.0.0/4", "fec0::/10")),
)
_NETWORKS = tuple(
    (category, ipaddress.ip_network(cidr)) for category, cidrs in _RANGES for cidr in cidrs
)
_DESCRIPTION = {
    Category.UNSPECIFIED: "an unspecified address",
    Category.LOOPBACK: "a loopback address",
    Category.PRIVATE: "a private address",
    Category.LINK_LOCAL: "a link-local address",
    Category.UNIQUE_LOCAL: "a unique-local address",
    Category.IPV4_MAPPED: "an IPv4-mapped IPv6 address",
    Category.IPV4_TRANSLATED: "an IPv6 address embedding an IPv4 address",
    Category.MULTICAST: "a multicast address",
    Category.RESERVED: "a reserved, non-public address",
}


class EgressRefused(Exception):
    """The target may not be requested; `reason` says why, for a person to act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableHost(Exception):
    pass


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    """ASCII (IDNA) host without brackets, as the connection will use it."""
    port: int
    address: IPAddress | None
    """The address when the host is one; otherwise it is resolved at connection time."""


def classify(address: IPAddress) -> Category | None:
    """The non-public category of an address, or None for a public one."""
    for category, network in _NETWORKS:
        if address.version == network.version and address in network:
            return category
    if not address.is_global:
        return Category.RESERVED
    return None


def check_address(
    address: IPAddress, policy: EgressPolicy, *, port: int | None = None, via: str | None = None
) -> None:
    """Refuse a non-public address the policy does not allow, on `port` when it is known."""
    category = classify(address)
    if policy.permits(address, category, port):
        return
    assert category is not None
    subject = f"{via} resolves to {address}, which is" if via else f"{address} is"
    if port is not None and policy.permits(address, category):
        raise EgressRefused(
            f"{subject} {_DESCRIPTION[category]} reachable only on ports "
            f"{policy.ports_for(address, category)}, not on port {port}"
        )
    raise EgressRefused(f"{subject} {_DESCRIPTION[category]}; webhooks must reach public hosts")


def _ipv4_part(part: str) -> int | None:
    radix, digits = 10, part
    if part[:2].lower() == "0x":
        radix, digits = 16, part[2:]
    elif len(part) > 1 and part.startswith("0"):
        radix, digits = 8, part[1:]
    if digits == "":
        return 0
    allowed = "0123456789abcdef"[:radix]
    if any(ch not in allowed for ch in digits.lower()):
        return None
    return int(digits, radix)


def numeric_ipv4(host: str) -> tuple[ipaddress.IPv4Address, bool] | None:
    """Decode a numeric IPv4 host the way URL parsers and `inet_aton` do.

    Returns (address, canonical) — canonical is plain dotted decimal — or None when the host
    is a name. A host that looks numeric but is out of range is refused outright.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    if not parts or _ipv4_part(parts[-1]) is None:
        return None
    numbers = [_ipv4_part(p) for p in parts]
    *head, last = numbers
    if (
        len(parts) > 4
        or any(n is None or n > 255 for n in head)
        or last is None
        or last >= 256 ** (5 - len(parts))
    ):
        raise EgressRefused(f"{host!r} is not a valid IPv4 address")
    value = last
    for i, n in enumerate(head):
        assert n is not None
        value += n << (8 * (3 - i))
    canonical = len(parts) == 4 and all(p.isdigit() and p == str(int(p)) for p in parts)
    return ipaddress.IPv4Address(value), canonical


def check_host(host: str, policy: EgressPolicy, port: int | None = None) -> IPAddress | None:
    """The address a host literally denotes (checked, on `port` when known), or None for a
    name to resolve later."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not bare:
        raise EgressRefused("the URL has no host")
    try:
        literal = ipaddress.ip_address(bare)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, policy, port=port)
        return literal
    decoded = numeric_ipv4(bare)
    if decoded is not None:
        address, canonical = decoded
        if not canonical:
            category = classify(address)
            explicit = policy.lists(address) or (
                category is not None and category in policy.allow_categories
            )
            if not explicit:
                raise EgressRefused(
                    f"numeric host {bare!r} means {address}; write public addresses in "
                    "dotted-decimal form"
                    + (f" ({address} is {_DESCRIPTION[category]})" if category else "")
                )
        check_address(address, policy, port=port)
        return address
    name = bare.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        check_address(ipaddress.IPv4Address("127.0.0.1"), policy, port=port, via=bare)
    return None


def check_url(url: str, policy: EgressPolicy) -> Target:
    """Static checks without I/O: scheme, host form and literal addresses."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        # httpx refuses some numeric forms (e.g. 0177.0.0.1); say what they mean.
        host = urlsplit(url).hostname
        if host:
            check_host(host, EgressPolicy())
        raise EgressRefused(f"{url!r} is not a valid URL: {exc}") from None
    scheme = parsed.scheme
    if scheme not in DEFAULT_PORTS:
        raise EgressRefused(f"scheme {scheme or '(none)'!r} is not allowed; use https")
    if scheme == "http" and not policy.allow_http:
        raise EgressRefused("plain http is not allowed; use https")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or DEFAULT_PORTS[scheme]
    address = check_host(host, policy, port)
    return Target(url=str(parsed), scheme=scheme, host=host, port=port, address=address)


async def resolve(target: Target, policy: EgressPolicy) -> tuple[IPAddress, ...]:
    """Every address the host resolves to, each checked; one refused address refuses all
    (a name must not mix public and internal answers). Bound it with `asyncio.timeout`."""
    if target.address is not None:
        return (target.address,)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise UnresolvableHost(f"{target.host} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost(f"{target.host} has no addresses")
    for address in addresses:
        check_address(address, policy, port=target.port, via=target.host)
    return tuple(addresses)
