"""An httpx client that connects only to addresses it has checked.

Every new connection resolves the host, checks every address, and connects to a checked one;
the URL keeps its host name, so the `Host` header, TLS SNI and certificate verification are
those of the name. Redirects are not followed and proxies from the environment are ignored.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable

import httpcore
import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from egress.guard import EgressRefused, Target, UnresolvableHost, check_host, check_url, resolve
from egress.policy import EgressPolicy


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks at connect time, then dials the checked address itself."""

    def __init__(
        self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = Target(
            url="", scheme="", host=host, port=port, address=check_host(host, self._policy, port)
        )
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(target, self._policy)
        except UnresolvableHost as exc:
            raise httpcore.ConnectError(str(exc)) from None
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not an egress target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(
        self,
        policy: EgressPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self._policy = policy
        # httpx offers no way to pass a network backend, so the pool is built here with the
        # same arguments httpx would use, plus ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(policy, network_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(str(request.url), self._policy)
        return await super().handle_async_request(request)


def client(
    policy: EgressPolicy,
    *,
    timeout: float = 15.0,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for user-given URLs: checked scheme and addresses, no redirects,
    no environment proxies. Raises `EgressRefused` for a target the policy refuses."""
    http = httpx.AsyncClient(
        transport=GuardedTransport(policy, verify=verify, limits=limits),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )
    # A client span per request, and the W3C `traceparent` sent with it; the instrumentation
    # wraps this client's own (guarded) transport.
    HTTPXClientInstrumentor.instrument_client(http)
    return http
