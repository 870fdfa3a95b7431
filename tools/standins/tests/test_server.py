from __future__ import annotations

import socket

import httpx
import pytest
from standins.server import round_robin_ports, serve, serve_picking, wait_until
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", hello)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_serve_answers_on_loopback_inside_the_block_and_stops_after_it() -> None:
    with serve(APP) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url).text == "hello"
        port = int(url.rsplit(":", 1)[1])
    assert not _listening(port)


def test_serve_takes_the_port_it_is_given() -> None:
    port = _free_port()
    with serve(APP, port) as url:
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(url).status_code == 200


def test_serve_picking_skips_ports_that_are_taken() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    free = _free_port()
    offers = iter([busy, free])
    try:
        with serve_picking(APP, lambda: next(offers), attempts=2) as url:
            assert url == f"http://127.0.0.1:{free}"
    finally:
        taken.close()


def test_serve_picking_gives_up_after_its_attempts() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    try:
        with (
            pytest.raises(RuntimeError, match="no free loopback port"),
            serve_picking(APP, lambda: busy, attempts=3),
        ):
            pass
    finally:
        taken.close()


def test_round_robin_ports_offers_each_port_of_the_range_in_turn() -> None:
    pick = round_robin_ports(28000, 28003)
    offered = [pick() for _ in range(8)]
    assert sorted(offered[:4]) == [28000, 28001, 28002, 28003]
    assert offered[4:] == offered[:4]
    assert pick.span == 4


def test_wait_until_returns_the_predicates_last_value_at_the_deadline() -> None:
    calls = iter(range(1000))
    assert wait_until(lambda: next(calls) >= 3, timeout=1.0)
    assert not wait_until(lambda: False, timeout=0.05)
