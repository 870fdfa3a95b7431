"""What outbound requests may reach: public addresses over https, plus an explicit allowlist.

`EGRESS_ALLOW` lists address categories (`loopback`, `private`, …) and/or CIDRs, comma
separated; `EGRESS_ALLOW_HTTP=true` permits plain http. With `ENVIRONMENT=production` a blanket
allowlist (`0.0.0.0/0`, `::/0`) is refused at startup.
"""

from __future__ import annotations

import ipaddress
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


@dataclass(frozen=True)
class EgressPolicy:
    allow_categories: frozenset[Category] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_http: bool = False

    @classmethod
    def parse(cls, allow: str, *, allow_http: bool = False) -> EgressPolicy:
        """`"loopback, 10.1.0.0/16"` → a policy; unknown entries raise `PolicyError`."""
        categories: set[Category] = set()
        networks: list[IPNetwork] = []
        for raw in allow.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry in Category.__members__.values():
                categories.add(Category(entry))
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                known = ", ".join(c.value for c in Category)
                raise PolicyError(
                    f"egress allowlist entry {raw.strip()!r} is neither a category ({known}) "
                    "nor a CIDR"
                ) from None
        return cls(frozenset(categories), tuple(networks), allow_http)

    @property
    def blanket(self) -> bool:
        """True when some allowed network covers a whole address family."""
        return any(n.prefixlen == 0 for n in self.allow_networks)

    def permits(self, address: IPAddress, category: Category | None) -> bool:
        if category is None:
            return True
        return category in self.allow_categories or self.lists(address)

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
