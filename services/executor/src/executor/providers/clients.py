"""The HTTP clients providers speak through.

An address the operator configured (settings) is trusted; a tenant's own base URL and every
output URL a provider hands back are user-given, so they go through the egress guard (no private
networks unless PROVIDER_EGRESS_ALLOW permits them, no redirects)."""

from __future__ import annotations

from dataclasses import dataclass

import egress
import httpx

from executor.imaging.codec import ImageLimits
from executor.providers.base import Credentials


@dataclass(frozen=True)
class ProviderClients:
    policy: egress.EgressPolicy
    timeout: float
    """Per HTTP request to a provider (a synchronous generation holds one open for long)."""
    poll_interval: float
    limits: ImageLimits

    def transport(self, creds: Credentials) -> httpx.AsyncBaseTransport:
        """A fresh transport for one generation: the caller closes it when done."""
        if creds.trusted:
            return httpx.AsyncHTTPTransport()
        return egress.GuardedTransport(self.policy)

    def client(
        self, creds: Credentials, *, headers: dict[str, str] | None = None
    ) -> httpx.AsyncClient:
        """A client for one generation's API calls; close it when done."""
        return httpx.AsyncClient(
            transport=self.transport(creds),
            timeout=self.timeout,
            headers=headers,
            follow_redirects=False,
            trust_env=False,
        )

    def downloads(self) -> httpx.AsyncClient:
        """For output URLs, whoever configured the provider: they come from its answers."""
        return egress.client(self.policy, timeout=self.timeout)
