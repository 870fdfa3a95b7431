"""PostgreSQL and FerretDB-on-PostgreSQL: settings, command lines, start and stop order."""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack import process, stack
from devstack.component import Component, Launch, Say, Status
from devstack.mongodb import MongoDB, ferretdb_command, ferretdb_postgresql_url
from devstack.postgres import (
    Postgres,
    leftover_pids,
    others_can_enter,
    outside_data_dir,
    pick_bindir,
    postgres_command,
    server_settings,
    socket_dir_fits,
    unreachable_ancestor,
)
from devstack.settings import Settings


def _settings(tmp_path: Path, **changes: object) -> Settings:
    base = Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _server_dir(root: Path, *names: str) -> Path:
    root.mkdir(parents=True)
    for name in names:
        (root / name).write_text("#!/bin/sh\n")
    return root


def test_the_postgres_port_defaults_and_follows_the_environment() -> None:
    assert Settings.from_env({}).postgres_port == 37432
    assert Settings.from_env({"DEVSTACK_POSTGRES_PORT": "45432"}).postgres_port == 45432
    with pytest.raises(ValueError, match="DEVSTACK_POSTGRES_PORT"):
        Settings.from_env({"DEVSTACK_POSTGRES_PORT": "x"})


def test_the_server_binaries_are_found_via_pg_config_else_the_newest_debian_version(
    tmp_path: Path,
) -> None:
    v13 = _server_dir(tmp_path / "lib/postgresql/13/bin", "postgres", "initdb")
    v15 = _server_dir(tmp_path / "lib/postgresql/15/bin", "postgres", "initdb")
    client_only = _server_dir(tmp_path / "lib/postgresql/16/bin", "psql", "pg_config")
    assert pick_bindir(str(v13), [v15, client_only]) == v13
    # libpq-dev's pg_config names a bindir without the server: fall back to the glob
    assert pick_bindir(str(client_only), [v13, v15, client_only]) == v15
    assert pick_bindir(None, [client_only]) is None


def test_the_server_is_durable_loopback_only_and_sized_for_ferretdb(tmp_path: Path) -> None:
    values = server_settings("127.0.0.1", 37432, tmp_path / "run")
    assert values["listen_addresses"] == "127.0.0.1"
    assert values["port"] == "37432"
    assert values["unix_socket_directories"] == str(tmp_path / "run")
    assert (values["fsync"], values["synchronous_commit"], values["full_page_writes"]) == (
        "on",
        "on",
        "on",
    )
    assert int(values["max_connections"]) > 150  # FerretDB's pool + psql + reserved slots
    assert values["plan_cache_mode"] == "force_custom_plan"
    assert server_settings("127.0.0.1", 1, None)["unix_socket_directories"] == ""

    cmd = postgres_command(Path("/pg/bin"), tmp_path / "data", {"port": "1", "fsync": "on"})
    assert cmd == [
        "/pg/bin/postgres",
        "-D",
        str(tmp_path / "data"),
        "-c",
        "port=1",
        "-c",
        "fsync=on",
    ]


def test_a_socket_path_too_long_for_sockaddr_un_is_not_used() -> None:
    assert socket_dir_fits(Path("/work/main/.stack/postgres/run"), 37432)
    assert not socket_dir_fits(Path("/" + "d" * 100), 37432)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's own tmp folders are private)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_postgres_component_runs_from_the_state_dir(open_dir: Path) -> None:
    pg = Postgres(_settings(open_dir))
    assert pg.pgdata == open_dir / "state/postgres/data"
    assert pg.marker == f"-D {pg.pgdata}"
    assert pg.ports() == [37432]
    assert pg.url("ferretdb") == "postgres://postgres@127.0.0.1:37432/ferretdb"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_a_state_dir_the_postgres_user_cannot_reach_moves_its_data_to_var_tmp(
    open_dir: Path,
) -> None:
    private = open_dir / "home"
    private.mkdir(mode=0o700)
    pg = Postgres(_settings(private))
    assert pg.data_dir == outside_data_dir(private / "state", "postgres")
    assert pg.data_dir.parent.parent == Path("/var/tmp")
    assert others_can_enter(pg.pgdata)
    assert not others_can_enter(private / "state" / "postgres")
    assert Postgres(_settings(private)).data_dir == pg.data_dir, "the same place every time"


def test_ferretdb_takes_the_postgresql_url_with_a_pool_size() -> None:
    url = ferretdb_postgresql_url("postgres://postgres@127.0.0.1:37432/ferretdb", 150)
    assert url == "postgres://postgres@127.0.0.1:37432/ferretdb?pool_max_conns=150"
    cmd = ferretdb_command(Path("/c/ferretdb-embedded"), "127.0.0.1:37017", url)
    assert cmd == ["/c/ferretdb-embedded", "-listen", "127.0.0.1:37017", "-postgresql-url", url]


def test_ferretdb_needs_postgres_and_mongod_does_not(tmp_path: Path) -> None:
    ferret = MongoDB(_settings(tmp_path, mongodb_backend="ferretdb"))
    assert ferret.dependencies() == ("postgres",)
    assert ferret.marker == "ferretdb-embedded -listen 127.0.0.1:37017"
    mongod = _settings(tmp_path, mongodb_backend="mongod")
    assert MongoDB(mongod).dependencies() == ()
    assert "postgres" not in [c.name for c in stack.components(mongod)]
    names = [c.name for c in stack.components(_settings(tmp_path, mongodb_backend="ferretdb"))]
    assert names == ["kafka", "postgres", "mongodb", "s3"]


class _Fake(Component):
    def __init__(self, settings: Settings, name: str, deps: tuple[str, ...] = ()) -> None:
        super().__init__(settings)
        self.name = name
        self.deps = deps
        self.fails = False
        self.started = threading.Event()

    @property
    def port(self) -> int:
        return 1

    def ports(self) -> list[int]:
        return [1]

    def launch(self, say: Say) -> Launch:
        raise NotImplementedError

    def probe(self, timeout: float) -> str:
        return "fake"

    def dependencies(self) -> tuple[str, ...]:
        return self.deps

    def ensure(self, say: Say) -> Status:
        self.started.set()
        if self.fails:
            raise self.fail("broken")
        return Status(self.name, True, 1, 1, "fake", "fake")


def test_dependents_stop_first(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    comps: list[Component] = [
        _Fake(s, "kafka"),
        _Fake(s, "postgres"),
        _Fake(s, "mongodb", ("postgres",)),
    ]
    waves = [[c.name for c in wave] for wave in stack.stop_waves(comps)]
    assert waves == [["kafka", "mongodb"], ["postgres"]]


def test_a_component_starts_only_after_its_dependency_is_healthy(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    pg, ferret = _Fake(s, "postgres"), _Fake(s, "mongodb", ("postgres",))
    gates = stack._Gates([pg, ferret])
    waiting = threading.Thread(target=gates.run, args=(ferret, print))
    waiting.start()
    assert not ferret.started.wait(0.5)
    gates.run(pg, print)
    waiting.join(5)
    assert ferret.started.is_set()

    broken, dependent = _Fake(s, "postgres"), _Fake(s, "mongodb", ("postgres",))
    broken.fails = True
    gates = stack._Gates([broken, dependent])
    with pytest.raises(Exception, match="broken"):
        gates.run(broken, print)
    with pytest.raises(Exception, match="not started: postgres is not healthy"):
        gates.run(dependent, print)
    assert not dependent.started.is_set()


def test_processes_left_in_a_data_dir_are_found(tmp_path: Path) -> None:
    assert leftover_pids(tmp_path) == []
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path)
    try:
        assert child.pid in leftover_pids(tmp_path)
    finally:
        child.kill()
        child.wait()


def test_the_pid_on_the_first_line_of_a_lock_file_is_read(tmp_path: Path) -> None:
    lock = tmp_path / "postmaster.pid"
    lock.write_text("4242\n/var/lib/postgresql/data\n1700000000\n")
    assert process.read_pid_line(lock) == 4242
    assert process.read_pid_line(tmp_path / "missing") is None


def test_the_server_runs_as_the_postgres_user_only_when_we_are_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = Postgres(_settings(tmp_path))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert pg.run_as() is None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user here (devstack creates it when run as root)")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    user = pg.run_as()
    assert user is not None
    assert (user.name, user.uid, user.gid) == ("postgres", entry.pw_uid, entry.pw_gid)
    assert user.env()["HOME"] == entry.pw_dir


def test_a_directory_the_server_user_cannot_enter_is_named() -> None:
    base = Path(tempfile.mkdtemp(prefix="devstack-test-"))  # pytest's tmp_path base is 0700
    try:
        closed = base / "closed"
        (closed / "repo/.stack").mkdir(parents=True)
        base.chmod(0o755)
        closed.chmod(0o700)
        st = closed.stat()
        stranger = (st.st_uid + 4242, st.st_gid + 4242)
        target = closed / "repo/.stack/postgres"
        assert unreachable_ancestor(target, *stranger) == closed
        assert unreachable_ancestor(target, st.st_uid, st.st_gid) is None
        closed.chmod(0o711)
        assert unreachable_ancestor(target, *stranger) is None
    finally:
        shutil.rmtree(base)
