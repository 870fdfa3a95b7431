"""Starting a server whose port a passing connection holds: our ports lie in Linux's
ephemeral range, so a server may exit once with "address already in use"."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from devstack.component import Component, Launch, Say
from devstack.errors import DevstackError
from devstack.settings import Settings


class Flaky(Component):
    """Exits with the address-in-use message for its first `losses` starts, then serves."""

    name = "flaky"

    def __init__(self, settings: Settings, losses: int, message: str) -> None:
        super().__init__(settings)
        self.losses = losses
        self.message = message
        self.starts = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self._port = int(s.getsockname()[1])

    @property
    def port(self) -> int:
        return self._port

    def ports(self) -> list[int]:
        return [self._port]

    def launch(self, say: Say) -> Launch:
        self.starts += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.starts <= self.losses:
            code = f"import sys; print({self.message!r}, flush=True); sys.exit(1)"
        else:
            code = (
                "import socket, time; s = socket.socket(); "
                f"s.bind(('127.0.0.1', {self._port})); s.listen(); time.sleep(60)"
            )
        return Launch([sys.executable, "-c", f"{code}  # {self.marker}"], {}, "python", "1")

    def probe(self, timeout: float) -> str:
        return "1"


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", health_timeout=20)


def test_a_server_that_lost_a_port_to_a_passing_connection_is_started_again(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    flaky = Flaky(_settings(tmp_path), losses=1, message="bind: address already in use")
    try:
        status = flaky.ensure(said.append)
        assert status.healthy
        assert flaky.starts == 2
        assert any("starting again" in line for line in said)
    finally:
        flaky.stop(said.append)


def test_a_server_that_exits_for_another_reason_is_not_started_again(tmp_path: Path) -> None:
    flaky = Flaky(_settings(tmp_path), losses=1, message="configuration error")
    with pytest.raises(DevstackError, match="exited during start"):
        flaky.ensure(lambda _line: None)
    assert flaky.starts == 1
