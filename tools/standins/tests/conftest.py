"""What the stand-in test modules share. A module names its stand-in in a `standin` fixture
(module scope) and, when the API wants a key, the headers that carry it in `auth_headers`;
`served` serves that stand-in once for the module, and `api` hands each test the stand-in,
reset, with a client for it that sends those headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from standins import StandIn


@pytest.fixture(scope="module")
def auth_headers() -> dict[str, str]:
    return {}


@pytest.fixture(scope="module")
def served(standin: StandIn) -> Iterator[tuple[StandIn, str]]:
    with standin.serve() as url:
        yield standin, url


@pytest.fixture
def api(
    served: tuple[StandIn, str], auth_headers: dict[str, str]
) -> Iterator[tuple[StandIn, httpx.Client]]:
    standin, url = served
    standin.reset()
    with httpx.Client(base_url=url, headers=auth_headers) as client:
        yield standin, client
