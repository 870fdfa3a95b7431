"""What outbound requests may reach: public addresses over https, plus an explicit allowlist.

`EGRESS_ALLOW` lists address categories (`loopback`, `private`, …) and/or CIDRs, comma
separated; `EGRESS_ALLOW_HTTP=true` permits plain http. An entry may end in `:PORT` or
`:LOW-HIGH` to admit those addresses only on those ports (`loopback:28000-28999`, so a local
stack's webhooks cannot reach its own Kafka or database ports); repeat an entry for several
ranges. An IPv6 network with ports needs its prefix (`::1/128:8080`). Public addresses are
reachable on every port. With `ENVIRONMENT=production` a blanket
allowlist (`0.0.0.0/0`, `::/0`) is refused at startup.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import model_validator
from pydantic_settings import BaseSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Category(StrEnum):
    """Address ranges that are not the public internet; each is refused unless allowed."""

    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    UNIQUE_LOCAL = "unique-local"
    IPV4_MAPPED = "ipv4-mapped"
    IPV4_TRANSLATED = "ipv4-translated"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"


class PolicyError(ValueError):
    pass


_PORTS = re.compile(r"^(?P<low>\d{1,5})(?:-(?P<high>\d{1,5}))?$")


@dataclass(frozen=True)
class Rule:
    """One allowlist entry: a category or a network, on every port or on an inclusive range."""

    target: Category | IPNetwork
    ports: tuple[int, int] | None = None

    def covers(self, address: IPAddress, category: Category | None) -> bool:
        if isinstance(self.target, Category):
            return self.target == category
        return address.version == self.target.version and address in self.target

    def admits(self, port: int | None) -> bool:
        """`port=None` asks whether some port is admitted (always true)."""
        return port is None or self.ports is None or self.ports[0] <= port <= self.ports[1]

    def __str__(self) -> str:
        ports = "" if self.ports is None else f":{self.ports[0]}-{self.ports[1]}"
        return f"{self.target}{ports}"

    @classmethod
    def parse(cls, entry: str) -> Rule:
        target, ports = _split_ports(entry)
        if target in Category.__members__.values():
            return cls(Category(target), ports)
        try:
            return cls(ipaddress.ip_network(target, strict=False), ports)
        except ValueError:
            known = ", ".join(c.value for c in Category)
            raise PolicyError(
                f"egress allowlist entry {entry!r} is neither a category ({known}) nor a CIDR, "
                "optionally followed by :PORT or :LOW-HIGH"
            ) from None


def _split_ports(entry: str) -> tuple[str, tuple[int, int] | None]:
    head, sep, tail = entry.rpartition(":")
    match = _PORTS.match(tail) if sep else None
    # A bare IPv6 address ends in digits after a colon too; only a category, an IPv4 form
    # or a network written with its /prefix can carry ports.
    if match is None or not head or (":" in head and "/" not in head):
        return entry, None
    low = int(match["low"])
    high = int(match["high"] or low)
    if not 1 <= low <= high <= 65535:
        raise PolicyError(f"egress allowlist entry {entry!r} has an invalid port range")
    return head, (low, high)


@dataclass(frozen=True)
class EgressPolicy:
    rules: tuple[Rule, ...] = ()
    allow_http: bool = False

    @classmethod
    def parse(cls, allow: str, *, allow_http: bool = False) -> EgressPolicy:
        """`"loopback:28000-28999, 10.1.0.0/16"` → a policy; unknown entries raise
        `PolicyError`."""
        rules = tuple(Rule.parse(raw.strip().lower()) for raw in allow.split(",") if raw.strip())
        return cls(rules, allow_http)

    @property
    def allow_categories(self) -> frozenset[Category]:
        return frozenset(r.target for r in self.rules if isinstance(r.target, Category))

    @property
    def allow_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(r.target for r in self.rules if not isinstance(r.target, Category))

    @property
    def blanket(self) -> bool:
        """True when some allowed network covers a whole address family."""
        return any(n.prefixlen == 0 for n in self.allow_networks)

    def permits(
        self, address: IPAddress, category: Category | None, port: int | None = None
    ) -> bool:
        """Public addresses on any port; others when an entry covers the address and port
        (`port=None`: on some port)."""
        if category is None:
            return True
        return any(r.covers(address, category) and r.admits(port) for r in self.rules)

    def ports_for(self, address: IPAddress, category: Category | None) -> str:
        """The ports an allowed non-public address may be reached on, for messages."""
        ranges: list[str] = []
        for rule in self.rules:
            if not rule.covers(address, category):
                continue
            if rule.ports is None:
                return "every port"
            low, high = rule.ports
            ranges.append(str(low) if low == high else f"{low}-{high}")
        return ", ".join(ranges)

    def lists(self, address: IPAddress) -> bool:
        """Explicitly allowed by a CIDR of the allowlist."""
        return any(address.version == n.version and address in n for n in self.allow_networks)


class EgressSettings(BaseSettings):
    """Mixed into each service's settings; validated at startup."""

    egress_allow: str = ""
    egress_allow_http: bool = False
    environment: str = "development"

    @model_validator(mode="after")
    def _refuse_blanket_in_production(self) -> EgressSettings:
        policy = self.egress_policy()
        if self.environment.lower() == "production" and policy.blanket:
            raise ValueError(
                f"EGRESS_ALLOW={self.egress_allow!r} allows every address; "
                "a production deployment must list the networks it allows"
            )
        return self

    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy.parse(self.egress_allow, allow_http=self.egress_allow_http)
